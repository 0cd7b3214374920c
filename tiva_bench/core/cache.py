"""Feature cache: one ``.npz`` per (producer, settings, file content), validated on every read.

An entry's key hashes the producer's settings (name, version, front-end, sample rate, window,
weights' SHA-256, dtype, device: whatever changes its outputs) and the SHA-256 of the input
file's bytes, so renaming a file keeps its entry and changing a setting, the weights or the file
invalidates it. The full key is stored inside the entry and checked on read, so an entry copied or
renamed onto another clip's name is never used. Entries are written atomically (an interrupted run
resumes from what finished). An entry that cannot be read or fails validation (damaged zip, wrong
key, missing array, wrong shape or dtype, NaN/Inf) is reported through ``on_damaged``, removed
and recomputed by the caller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from tiva_bench.core.files import atomic_open, cache_root, file_digest, text_digest

__all__ = ["FeatureCache", "cache_root", "file_digest"]

_KEY_FIELD = "__tiva_bench_key__"


class FeatureCache:
    """Cached per-file outputs of one feature producer under one set of settings.

    ``name`` names the folder; ``settings`` (JSON-serialisable) is everything that changes the
    outputs; ``expect`` optionally maps each output name to its per-item shape (``None`` in a
    dimension means any size; ``None`` for the whole shape checks presence only) so a read
    validates them. ``on_damaged(path, reason)`` is called
    for each entry that fails validation (the caller warns; the entry is then recomputed).
    """

    def __init__(self, name: str, settings: dict, root: str | Path | None = None, recompute: bool = False,
                 expect: dict[str, tuple] | None = None, on_damaged: Callable[[Path, str], None] | None = None):
        self.name = name
        self.settings = settings
        self.recompute = recompute
        self.expect = expect or {}
        self.on_damaged = on_damaged
        self.dir = Path(root or cache_root()) / "features" / name
        self.settings_digest = text_digest(json.dumps(settings, sort_keys=True, default=str), 16)
        self.damaged: list[str] = []

    def key_for(self, digest: str) -> str:
        return text_digest(f"{self.settings_digest}:{digest}")

    def path_for(self, digest: str) -> Path:
        key = self.key_for(digest)
        return self.dir / key[:2] / f"{key}.npz"

    def _reject(self, path: Path, reason: str) -> None:
        self.damaged.append(f"{path}: {reason}")
        if self.on_damaged is not None:
            self.on_damaged(path, reason)
        try:
            if path.is_dir():
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass

    def validate(self, data: dict[str, np.ndarray], key: str) -> str | None:
        """The reason an entry is unusable, or None."""
        stored = data.pop(_KEY_FIELD, None)
        if stored is None or str(stored) != key:
            return "its stored key does not match (copied from another file or settings)"
        if not data:
            return "it holds no arrays"
        for name, shape in self.expect.items():
            if name not in data:
                return f"array {name!r} is missing"
            got = data[name].shape
            if shape is None:
                continue
            if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
                return f"array {name!r} has shape {got}, expected {shape}"
        for name, value in data.items():
            if value.dtype.kind not in "fiub":
                return f"array {name!r} has dtype {value.dtype}"
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                return f"array {name!r} holds NaN or Inf"
        return None

    def get(self, digest: str) -> dict[str, np.ndarray] | None:
        """The validated entry, or None (missing, damaged, or ``recompute``)."""
        if self.recompute:
            return None
        path = self.path_for(digest)
        if not os.path.lexists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                out = {k: data[k] for k in data.files}
        except Exception as exc:  # BadZipFile, OSError, ValueError, EOFError, IsADirectoryError, ...
            self._reject(path, f"unreadable ({type(exc).__name__})")
            return None
        reason = self.validate(out, self.key_for(digest))
        if reason is not None:
            self._reject(path, reason)
            return None
        return out

    def has(self, digest: str) -> bool:
        return not self.recompute and self.path_for(digest).is_file()

    def put(self, digest: str, outputs: dict[str, np.ndarray]) -> Path:
        path = self.path_for(digest)
        if path.is_dir() and not path.is_symlink():
            self._reject(path, "a folder stands in its place")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **{_KEY_FIELD: np.array(self.key_for(digest))}, **{k: np.asarray(v) for k, v in outputs.items()})
        return path
