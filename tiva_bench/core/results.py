"""Results of a scoring run: set values, per-clip values, skipped clips, warnings, provenance.

``results.json`` is the source of truth; ``per_clip.csv`` (column ``clip``, then one column per
metric, named as ``tiva-bench metrics --list`` prints them) is written beside it. NaN is written as
JSON ``null`` and as an empty CSV cell, always with a recorded reason in ``results.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tiva_bench.core.errors import InputError
from tiva_bench.core.files import atomic_open, atomic_write_text

RESULTS_FORMAT = 1
_PROVENANCE_PACKAGES = ("tiva-bench", "numpy", "scipy", "librosa", "soundfile", "av", "soxr", "numba", "pandas", "fastdtw", "torch", "mkl_fft")


@dataclass
class ClipResult:
    """Metric values for one clip; ``undefined`` maps a metric to why its value is NaN."""

    clip: str
    gen: str
    ref: str
    values: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    gen_sr: int = 0
    ref_sr: int = 0
    gen_padded_s: float = 0.0
    ref_padded_s: float = 0.0
    gen_silent: bool = False
    ref_silent: bool = False


@dataclass
class SetValue:
    """Aggregate of one metric over the set (mean of defined clips)."""

    value: float
    std: float
    n: int
    n_undefined: int
    ci_low: float | None = None  # bootstrap interval (units of value); None when not computed
    ci_high: float | None = None
    ci: dict | None = None  # how the interval was made: method, confidence, resamples, seed


def aggregate(clips: list[ClipResult], names: list[str]) -> dict[str, SetValue]:
    """Mean and std over clips where the metric is defined; NaN when no clip defines it."""
    out = {}
    for name in names:
        vals = np.array([c.values.get(name, math.nan) for c in clips], dtype=np.float64)
        finite = vals[np.isfinite(vals)]
        out[name] = SetValue(
            value=float(finite.mean()) if finite.size else math.nan,
            std=float(finite.std()) if finite.size else math.nan,
            n=int(finite.size),
            n_undefined=int(vals.size - finite.size),
        )
    return out


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/Inf -> None, numpy scalars -> Python numbers, Paths -> str."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def git_revision(path: Path) -> str | None:
    """``HEAD`` of the git checkout holding ``path`` (``+dirty`` if modified), else None."""
    try:
        rev = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_provenance() -> dict:
    """Package versions, git revision of tiva-bench, interpreter, platform and command line (about
    10 ms: package metadata and two git calls; a caller may compute it in a thread beside other work)."""
    versions = {}
    for name in _PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "git": git_revision(Path(__file__).resolve().parent),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "command": " ".join(sys.argv),
    }


def provenance(started: datetime, elapsed_s: float, environment: dict | None = None) -> dict:
    """``environment_provenance()`` (computed here unless given) and the run's timing."""
    return {**(environment if environment is not None else environment_provenance()),
            "started_at": started.isoformat(timespec="seconds"), "time_taken_s": round(elapsed_s, 3)}


@dataclass
class Results:
    """Everything one ``tiva-bench metrics`` run produced."""

    label: str
    gen_dir: str
    ref_dir: str
    metrics: dict[str, SetValue]
    clips: list[ClipResult]
    skipped: list[dict]
    ignored: list[dict]  # {"path", "reason"} per entry that is not a clip
    warnings: list[str]
    config: dict
    metric_info: dict[str, dict]
    provenance: dict = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics)

    def to_dict(self) -> dict:
        return _clean({
            "format": RESULTS_FORMAT,
            "label": self.label,
            "gen_dir": self.gen_dir,
            "ref_dir": self.ref_dir,
            "metrics": {k: {**self.metric_info.get(k, {}), **{f: x for f, x in vars(v).items() if not (f.startswith("ci") and x is None)}} for k, v in self.metrics.items()},
            "n_scored": len(self.clips),
            "n_skipped": len(self.skipped),
            "per_clip": [dict(vars(c)) for c in self.clips],
            "skipped": self.skipped,
            "ignored": self.ignored,
            "warnings": self.warnings,
            "config": self.config,
            "provenance": self.provenance,
        })

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``results.json`` and ``per_clip.csv`` atomically; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out / "results.json", out / "per_clip.csv"
        atomic_write_text(json_path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        names = self.metric_names
        with atomic_open(csv_path) as fh:
            writer = csv.writer(fh)
            writer.writerow(["clip", *names])
            for c in self.clips:
                row = [c.clip]
                for n in names:
                    v = c.values.get(n, math.nan)
                    row.append("" if not math.isfinite(v) else repr(float(v)))
                writer.writerow(row)
        return json_path, csv_path


def load_results(path: str | Path) -> dict:
    """Read a ``results.json`` (or a folder holding one) as a plain dict."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "results file does not exist", "run `tiva-bench metrics ... --out DIR` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "metrics" not in data:
        raise InputError(path, "not a tiva-bench results file (no 'metrics')")
    return data


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
