"""Dataclass configs for scoring, with YAML files and ``--set section.key=value`` overrides.

Every parameter that changes a number lives here, and the resolved config is written into
``results.json`` so each number records the settings that made it (DESIGN.md section 4).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tiva_bench.core.errors import ConfigError


@dataclass
class AudioConfig:
    """How each clip is cut before scoring.

    window_s: the scoring window, the first ``window_s`` seconds (TiVA uses 8.0). Shorter clips
        are zero-padded to the window and the padding is recorded per clip. ``0`` disables the
        window (whole clips are scored; pairwise metrics then pad the shorter of a pair).
    min_duration_s: clips shorter than this are skipped as "too short" rather than padded.
    """

    window_s: float = 8.0
    min_duration_s: float = 0.5


@dataclass
class SyncConfig:
    """Onset-strength (ODF) synchronisation metrics, TiVA Sec. 4.1.3.

    The ODF is ``librosa.onset.onset_strength(y, sr=sample_rate, hop_length, n_fft, n_mels)``.
    dtw: ``"exact"`` (compiled full dynamic programming) or ``"fastdtw"`` (the approximate
        algorithm of the PyPI ``fastdtw`` package with ``fastdtw_radius``; only for reproducing
        numbers that were computed with it -- it overestimates exact DTW).
    silent_policy: what W-dis does when an ODF is all zero (digital silence): ``"nan"`` gives NaN
        with a recorded reason; ``"uniform"`` treats the silent side as a uniform distribution
        over frames (no timing information). Both silent gives 0 under ``"uniform"``.
    """

    sample_rate: int = 16000
    hop_length: int = 1280
    n_fft: int = 2048
    n_mels: int = 128
    dtw: str = "exact"
    fastdtw_radius: int = 1
    silent_policy: str = "nan"
    odf_impl: str = "fast"  # "fast": batched, within 1e-5 of librosa's curve max; "librosa": librosa's own


@dataclass
class OnsetConfig:
    """Onset accuracy / AP (CondFoleyGen and SyncFusion definitions).

    Onsets are ``librosa.onset.onset_detect(y=..., sr=sample_rate, units="samples",
    delta=delta)``. Generated onsets closer than ``nms_window_s`` are suppressed (highest
    confidence kept); a reference onset is hit when a generated onset lies strictly within
    ``tolerance_s``; confidence is the peak of the min-max normalised ``|wav|`` of the generated
    audio within ``+-conf_window_s``. ``nms_reference`` applies the same suppression to the
    reference onsets (False reproduces the original scripts, where a perfect copy can score < 1).
    """

    sample_rate: int = 22050
    delta: float = 0.3
    tolerance_s: float = 0.1
    conf_window_s: float = 0.05
    nms_window_s: float = 0.05
    nms_reference: bool = True


@dataclass
class EnergyConfig:
    """Energy-envelope L1: RMS envelopes (``frame_length``/``hop_length`` samples at
    ``sample_rate``), each scaled to a peak of 1, mean absolute difference per frame."""

    sample_rate: int = 16000
    frame_length: int = 2048
    hop_length: int = 1280


@dataclass
class PairingConfig:
    """How generated files are matched to reference files.

    by: ``"stem"`` (file name without extension, anywhere below the folder) or ``"relpath"``
        (relative path without extension).
    strip_suffix / strip_prefix: removed from generated names before matching (e.g. ``_gen``).
    gen_pattern / ref_pattern: a regular expression searched in each name; its group named
        ``key`` (or else its first group, or else the whole match) becomes the matching key.
    """

    by: str = "stem"
    strip_suffix: str = ""
    strip_prefix: str = ""
    gen_pattern: str | None = None
    ref_pattern: str | None = None


@dataclass
class ScoreConfig:
    """Everything ``tiva-bench metrics`` needs besides the two folders."""

    metrics: list[str] = field(default_factory=lambda: ["w_dis", "dtw_dis", "onset_acc", "onset_ap", "energy_l1"])
    workers: int = 0  # 0: one per CPU core
    device: str = "cpu"  # where backbones run: cpu, cuda, cuda:1
    batch_size: int = 16  # clips per backbone batch
    cache_dir: str = ""  # feature cache; "" = $TIVA_BENCH_CACHE or ~/.cache/tiva_bench
    recompute: bool = False  # ignore cached features (they are rewritten)
    videos: str = ""  # videos for imagebind_score; "" = the reference files (or a video beside each)
    audio: AudioConfig = field(default_factory=AudioConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    onset: OnsetConfig = field(default_factory=OnsetConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    pairing: PairingConfig = field(default_factory=PairingConfig)

    def validate(self) -> "ScoreConfig":
        if self.sync.dtw not in ("exact", "fastdtw"):
            raise ConfigError(f"sync.dtw must be 'exact' or 'fastdtw', got {self.sync.dtw!r}")
        if self.sync.silent_policy not in ("nan", "uniform"):
            raise ConfigError(
                f"sync.silent_policy must be 'nan' or 'uniform', got {self.sync.silent_policy!r}"
            )
        if self.pairing.by not in ("stem", "relpath"):
            raise ConfigError(f"pairing.by must be 'stem' or 'relpath', got {self.pairing.by!r}")
        if self.audio.window_s < 0:
            raise ConfigError("audio.window_s must be >= 0 (0 scores whole clips)")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if self.workers < 0:
            raise ConfigError("workers must be >= 0 (0 = one per CPU core)")
        for section in (self.sync, self.onset, self.energy):
            if section.sample_rate <= 0:
                raise ConfigError(f"{type(section).__name__}.sample_rate must be positive")
        return self


def to_dict(config: Any) -> dict:
    """Plain nested dict of a dataclass config (for JSON/YAML)."""
    return dataclasses.asdict(config)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert ``value`` (often a string from ``--set``) to the field's annotated type."""
    hints = {"int": int, "float": float, "str": str, "bool": bool}
    ann = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    ann = ann.replace(" ", "")
    optional = "None" in ann
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    base = ann.replace("|None", "").replace("None|", "")
    try:
        if base.startswith("list"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        if base == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base in hints:
            return hints[base](value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: cannot read {value!r} as {base}") from None
    return value


def _apply(config: Any, data: dict, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(config)}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key {where!r} (known: {', '.join(prefix + k for k in fields)})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {where!r} is a section; give it a mapping")
            _apply(current, value, prefix=f"{where}.")
        else:
            setattr(config, key, _coerce(value, fields[key].type, where))


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> ScoreConfig:
    """Defaults, then a YAML file (if given), then ``section.key=value`` overrides, validated."""
    config = ScoreConfig()
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        _apply(config, data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        dotted, value = item.split("=", 1)
        nested: dict = {}
        cursor = nested
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        _apply(config, nested)
    return config.validate()
