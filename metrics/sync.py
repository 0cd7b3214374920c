"""Public synchronisation metrics on waveforms, and thin stateful classes over them."""

from __future__ import annotations

import math
import warnings

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.onsets import onset_metrics as _onset_metrics
from tiva_bench.core.signal import crop_or_pad, resample
from tiva_bench.metrics.functional.sync import dtw_dis_from_odf, onset_strength, w_dis_from_odf


class UndefinedMetricWarning(UserWarning):
    """A metric returned NaN; the message says why."""


def _prepare(wav: np.ndarray, sr: int, target_sr: int, window_s: float) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:  # (channels, n) or (n, channels): mix to mono over the shorter axis
        wav = wav.mean(axis=0 if wav.shape[0] <= wav.shape[1] else 1)
    if wav.ndim != 1:
        raise ValueError(f"expected a waveform of shape (n,) or (channels, n), got {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ValueError("waveform holds NaN/Inf samples")
    wav = resample(wav, sr, target_sr)
    return crop_or_pad(wav, target_sr, window_s)[0]


def _odfs(gen_wav, ref_wav, sr, target_sr, hop_length, n_fft, n_mels, window_s):
    gen = _prepare(gen_wav, sr, target_sr, window_s)
    ref = _prepare(ref_wav, sr, target_sr, window_s)
    return (onset_strength(gen, target_sr, hop_length, n_fft, n_mels), onset_strength(ref, target_sr, hop_length, n_fft, n_mels))


def _nan_with_warning(exc: UndefinedMetric, name: str) -> float:
    warnings.warn(f"{name} is NaN: {exc}", UndefinedMetricWarning, stacklevel=3)
    return math.nan


def w_dis(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = 16000, *, hop_length: int = 1280, n_fft: int = 2048, n_mels: int = 128, window_s: float = 8.0, silent_policy: str = "nan") -> float:
    """W-dis (frames) between a generated and a reference waveform, both at ``sr`` Hz.

    Both are mixed to mono, resampled to 16 kHz (soxr HQ) when ``sr`` differs, cut or zero-padded
    to the first ``window_s`` seconds (0 keeps them whole), and compared through their
    onset-strength curves (TiVA Sec. 4.1.3). Returns NaN with an ``UndefinedMetricWarning`` when a
    side is digital silence (see ``silent_policy``).
    """
    g, r = _odfs(gen_wav, ref_wav, sr, 16000, hop_length, n_fft, n_mels, window_s)
    try:
        return w_dis_from_odf(g, r, silent_policy)
    except UndefinedMetric as exc:
        return _nan_with_warning(exc, "w_dis")


def dtw_dis(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = 16000, *, hop_length: int = 1280, n_fft: int = 2048, n_mels: int = 128, window_s: float = 8.0, method: str = "exact", radius: int = 1) -> float:
    """DTW-dis between a generated and a reference waveform (same preparation as ``w_dis``).

    ``method="exact"`` (default, compiled) or ``"fastdtw"`` with ``radius`` (approximate).
    """
    g, r = _odfs(gen_wav, ref_wav, sr, 16000, hop_length, n_fft, n_mels, window_s)
    return dtw_dis_from_odf(g, r, method, radius)


def onset_acc_ap(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = 22050, *, window_s: float = 8.0, **kwargs) -> tuple[float, float]:
    """``(onset_acc, onset_ap)`` after resampling to 22.05 kHz and windowing; NaNs if undefined."""
    gen = _prepare(gen_wav, sr, 22050, window_s)
    ref = _prepare(ref_wav, sr, 22050, window_s)
    try:
        return _onset_metrics(gen, ref, 22050, **kwargs)
    except UndefinedMetric as exc:
        _nan_with_warning(exc, "onset_acc/onset_ap")
        return math.nan, math.nan


class MeanOfClips:
    """Stateful mean of a per-clip metric: ``update(gen_wav, ref_wav)`` then ``compute()``.

    Undefined clips (NaN) are counted in ``n_undefined`` and left out of the mean.
    """

    higher_is_better = False

    def __init__(self, fn, **kwargs):
        self.fn, self.kwargs = fn, kwargs
        self.reset()

    def reset(self) -> None:
        self.values: list[float] = []

    def update(self, gen_wav: np.ndarray, ref_wav: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            value = self.fn(gen_wav, ref_wav, **self.kwargs)
        self.values.append(value)
        return value

    @property
    def n_undefined(self) -> int:
        return int(np.sum(np.isnan(self.values)))

    def compute(self) -> float:
        finite = [v for v in self.values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else math.nan


class WDis(MeanOfClips):
    """Set-mean W-dis (lower is better)."""

    def __init__(self, sr: int = 16000, **kwargs):
        super().__init__(w_dis, sr=sr, **kwargs)


class DTWDis(MeanOfClips):
    """Set-mean DTW-dis (lower is better)."""

    def __init__(self, sr: int = 16000, **kwargs):
        super().__init__(dtw_dis, sr=sr, **kwargs)
