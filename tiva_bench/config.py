"""Dataclass configs for scoring, with YAML files and ``--set section.key=value`` overrides.

Every parameter that changes a number lives here, and the resolved config is written into
``results.json`` so each number records the settings that made it (DESIGN.md section 4).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tiva_bench.core.errors import ConfigError
from tiva_bench.core.registry import did_you_mean
from tiva_bench.metrics.functional.sync import ODF_HOP_LENGTH, ODF_N_FFT, ODF_N_MELS, ODF_SAMPLE_RATE


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

    sample_rate: int = ODF_SAMPLE_RATE
    hop_length: int = ODF_HOP_LENGTH
    n_fft: int = ODF_N_FFT
    n_mels: int = ODF_N_MELS
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
    include_hidden: also search entries whose names start with ``.`` (by default they are listed
        as ignored, and hidden folders are not searched: ``.DS_Store``, ``._clip.wav``, ``.git/``).
    """

    by: str = "stem"
    strip_suffix: str = ""
    strip_prefix: str = ""
    gen_pattern: str | None = None
    ref_pattern: str | None = None
    include_hidden: bool = False


@dataclass
class StatsConfig:
    """Intervals written with every set value (docs/PROTOCOL.md, "Intervals, paired tests and reports").

    resamples: percentile-bootstrap resamples over clips for means of per-clip metrics (0 = none).
    set_resamples: resamples for set metrics (FAD, KL, IS, class agreement, IB), recomputed on each
        resampled set of clips (0 = none). set_intervals: "auto" computes them where the cost is
        small (all but a Frechet distance with more clips than 1.5 x its embedding size), "always",
        or "never". confidence: the interval's coverage; seed: the resampling seed.
    """

    resamples: int = 10000
    set_resamples: int = 200
    set_intervals: str = "auto"
    confidence: float = 0.95
    seed: int = 0


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
    stats: StatsConfig = field(default_factory=StatsConfig)

    def validate(self) -> "ScoreConfig":
        """Check every setting (type, range, choices) before any work; raises ``ConfigError``
        naming the key and what it accepts."""
        validate_settings(self)
        return self

    @classmethod
    def preset(cls, name: str) -> "ScoreConfig":
        """A named starting point: ``"default"`` (the paper's protocol) or ``"synthetic"`` (the
        embedded benchmark: sync + synthetic-domain quality metrics over the whole 10.24-s clips)."""
        if name not in SCORE_PRESETS:
            raise ConfigError(f"unknown scoring preset {name!r}{did_you_mean(name, SCORE_PRESETS)}", f"one of: {', '.join(SCORE_PRESETS)}")
        config = cls()
        _apply(config, SCORE_PRESETS[name])
        return config


SYNTHETIC_METRICS = ["w_dis", "dtw_dis", "onset_acc", "onset_ap", "energy_l1", "fad_synth", "kl_synth", "is_synth", "class_acc"]
SCORE_PRESETS: dict[str, dict] = {
    "default": {},
    "synthetic": {"metrics": SYNTHETIC_METRICS, "audio": {"window_s": 10.24}},
}

# key -> (kind, low, high, choices): every numeric setting has a range; low/high are inclusive
# unless written as (">", x). Checked by validate_settings before any decoding.
RULES: dict[str, tuple] = {
    "workers": ("int", 0, 4096, None),
    "batch_size": ("int", 1, 1 << 16, None),
    "audio.window_s": ("window", 0.5, 86400.0, None),
    "audio.min_duration_s": ("float", 0.0, 86400.0, None),
    "sync.sample_rate": ("int", 1000, 384000, None),
    "sync.hop_length": ("int", 1, 1 << 20, None),
    "sync.n_fft": ("int", 16, 1 << 20, None),
    "sync.n_mels": ("int", 1, 1024, None),
    "sync.dtw": ("str", None, None, ("exact", "fastdtw")),
    "sync.fastdtw_radius": ("int", 0, 1 << 20, None),
    "sync.silent_policy": ("str", None, None, ("nan", "uniform")),
    "sync.odf_impl": ("str", None, None, ("fast", "librosa")),
    "onset.sample_rate": ("int", 1000, 384000, None),
    "onset.delta": ("float", 0.0, 1e6, None),
    "onset.tolerance_s": ("float", (">", 0.0), 60.0, None),
    "onset.conf_window_s": ("float", 0.0, 60.0, None),
    "onset.nms_window_s": ("float", 0.0, 60.0, None),
    "energy.sample_rate": ("int", 1000, 384000, None),
    "energy.frame_length": ("int", 1, 1 << 20, None),
    "energy.hop_length": ("int", 1, 1 << 20, None),
    "pairing.by": ("str", None, None, ("stem", "relpath")),
    "stats.resamples": ("int", 0, 10_000_000, None),
    "stats.set_resamples": ("int", 0, 1_000_000, None),
    "stats.set_intervals": ("str", None, None, ("auto", "always", "never")),
    "stats.confidence": ("float", (">", 0.0), 0.999999, None),
    "stats.seed": ("int", 0, 2**32 - 1, None),
}


def _get(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _describe(kind: str, low, high) -> str:
    lo = f"> {low[1]:g}" if isinstance(low, tuple) else f">= {low:g}"
    what = {"int": "a whole number", "float": "a finite number", "window": "0 (whole clips) or a number of seconds"}[kind]
    return f"{what} {lo} and <= {high:g}"


def validate_settings(config: Any) -> None:
    """Raise ``ConfigError`` for the first setting outside its type, range or choices."""
    for key, (kind, low, high, choices) in RULES.items():
        try:
            value = _get(config, key)
        except AttributeError:
            continue
        if kind == "str":
            if value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and kind == "int":
            ok = float(value).is_integer()
        if ok:
            if kind == "window" and value == 0:
                continue
            ok = (value > low[1]) if isinstance(low, tuple) else (value >= low)
            ok = ok and value <= high
        if not ok:
            raise ConfigError(f"{key} must be {_describe(kind, low, high)}, got {value!r}", f"--set {key}=VALUE with a value in that range")
    metrics = getattr(config, "metrics", None)
    if metrics is not None and not [m for m in metrics if str(m).strip()]:
        raise ConfigError("no metric named", "--metrics w_dis,dtw_dis (tiva-bench metrics --list shows them all)")
    device = getattr(config, "device", None)
    if device is not None:
        validate_device(device)


def validate_device(device: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a GPU that is not there is a usage error."""
    text = str(device).strip()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (kind != "cuda" and index):
        raise ConfigError(f"unknown device {device!r}", "use cpu, cuda, cuda:N or mps")
    if kind in ("cuda", "mps"):
        import torch

        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available here", "use --device cpu")
        if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)", "use cuda:0 ... or cpu")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' asked for, but it is not available here", "use --device cpu")
    return text


def to_dict(config: Any) -> dict:
    """Plain nested dict of a dataclass config (for JSON/YAML)."""
    return dataclasses.asdict(config)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert ``value`` (a YAML value, a typed flag, or a string from ``--set``) to the field's type.

    ``annotation`` is the resolved type (``int``, ``float``, ``str``, ``bool``, ``list[str]``,
    ``str | None``). Numbers written as text are parsed; "nan"/"inf" parse and are then refused
    by the range check; a bool is never accepted where a number is expected.
    """
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            return None
        annotation = next(a for a in args if a is not type(None))
    origin = typing.get_origin(annotation)
    try:
        if origin is list or annotation is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise TypeError(value)
            return [str(v) for v in value]
        if annotation is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.strip().lower() in ("1", "true", "yes", "on")
            raise ValueError(value)
        if annotation in (int, float):
            if isinstance(value, bool) or isinstance(value, (list, dict)) or value is None:
                raise TypeError(value)
            number = float(value)
            if annotation is int and math.isfinite(number) and number.is_integer():
                return int(number)
            return number
        if annotation is str:
            if isinstance(value, (list, dict)):
                raise TypeError(value)
            return str(value)
    except (TypeError, ValueError):
        kind = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{where}: cannot read {value!r} as {kind}") from None
    return value


def _apply(config: Any, data: dict, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
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
            setattr(config, key, _coerce(value, hints[key], where))


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict:
    """A YAML file holding a mapping; every way it can be wrong is a one-line ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text (YAML) file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping at the top level")
    return data


def nest(dotted: dict[str, Any]) -> dict:
    """``{"audio.window_s": 8}`` -> ``{"audio": {"window_s": 8}}``."""
    nested: dict = {}
    for key, value in dotted.items():
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return nested


def parse_set_options(items: typing.Sequence[str]) -> dict[str, str]:
    """``["sync.dtw=fastdtw"]`` -> ``{"sync.dtw": "fastdtw"}`` (``--set`` values stay text)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] | dict[str, Any] = (), preset: str = "default",
                flags: dict[str, Any] | None = None) -> ScoreConfig:
    """The one path from settings to a validated ``ScoreConfig``: the preset's defaults, then a YAML
    file, then ``--set`` overrides (``section.key=value`` strings or a dict), then typed command-line
    flags (``{"audio.window_s": 8.0}``; ``None`` values are left out), then validation."""
    config = ScoreConfig.preset(preset)
    if path is not None:
        _apply(config, read_yaml_mapping(path))
    if not isinstance(overrides, dict):
        overrides = parse_set_options(overrides)
    _apply(config, nest(overrides))
    _apply(config, nest({k: v for k, v in (flags or {}).items() if v is not None}))
    return config.validate()
