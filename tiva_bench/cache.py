"""Feature cache: one ``.npz`` per (extractor, version, front-end, window, file content).

Keys hash the extractor's name, version, front-end settings and sample rate, the scoring window,
and the SHA-256 of the file's bytes, so renaming a file keeps its entry and changing a setting or
the file invalidates it. Entries are written to a temporary file and renamed, so an interrupted
run leaves no half-written entry and resumes from what finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """``$TIVA_BENCH_CACHE`` or ``~/.cache/tiva_bench``."""
    return Path(os.environ.get("TIVA_BENCH_CACHE") or Path.home() / ".cache" / "tiva_bench")


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Cached per-file outputs of one feature producer under one set of settings.

    ``name`` names the folder; ``settings`` (JSON-serialisable) is everything that changes the
    outputs. ``for_extractor`` builds the settings of an audio extractor at a scoring window.
    """

    def __init__(self, name: str, settings: dict, root: str | Path | None = None, recompute: bool = False):
        self.name = name
        self.settings = settings
        self.recompute = recompute
        self.dir = Path(root or cache_root()) / "features" / name
        self.settings_digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def for_extractor(cls, spec, window_s: float, root: str | Path | None = None, recompute: bool = False) -> "FeatureCache":
        settings = {"name": spec.name, "version": spec.version, "sample_rate": spec.sample_rate, "frontend": spec.frontend, "window_s": window_s}
        cache = cls(spec.name, settings, root, recompute)
        cache.spec = spec
        return cache

    def path_for(self, digest: str) -> Path:
        key = hashlib.sha256(f"{self.settings_digest}:{digest}".encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.npz"

    def get(self, digest: str) -> dict[str, np.ndarray] | None:
        if self.recompute:
            return None
        path = self.path_for(digest)
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (FileNotFoundError, OSError, ValueError, EOFError):
            return None  # missing or damaged entries are recomputed

    def has(self, digest: str) -> bool:
        return not self.recompute and self.path_for(digest).exists()

    def put(self, digest: str, outputs: dict[str, np.ndarray]) -> Path:
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v) for k, v in outputs.items()})
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path
