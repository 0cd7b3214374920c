"""Public synchronisation metrics on waveforms, thin stateful classes over them, and the batched
file-to-values path that scores sync metrics for many pairs of files.

``score_sync_chunk`` decodes a list of pairs (the one decoder in ``tiva_bench.core.audio``: same
mono mix, soxr resampling and window as every other metric), computes each clip's onset strength
as soon as it is decoded (one reusable ``OnsetStrengthPlan`` per window length), and W-dis and
DTW-dis for all pairs at once (``sync_from_odfs``: batched W-dis and DTW). Its outcomes are those
of the per-pair scorer: a ``ClipResult`` per pair, or a skipped entry with a reason.
It needs only numpy, scipy.fft and the decoders (no librosa, numba or torch); the scoring runner
calls it on chunks of pairs in worker processes under the one pool supervisor
(``tiva_bench.core.pool``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

from tiva_bench.core.audio import AudioClip, read_pcm16_mono
from tiva_bench.core.errors import InputError
from tiva_bench.core.results import ClipResult
from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.onsets import onset_metrics as _onset_metrics
from tiva_bench.core.signal import crop_or_pad, resample
from tiva_bench.metrics.functional.onset_strength import OnsetStrengthPlan
from tiva_bench.metrics.functional.sync import (ODF_HOP_LENGTH, ODF_N_FFT, ODF_N_MELS, ODF_SAMPLE_RATE, dtw_dis_from_odf, onset_strength,
                                                sync_from_odfs, w_dis_from_odf)


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


def _odfs(gen_wav, ref_wav, sr, target_sr, hop_length, n_fft, n_mels, window_s, odf_impl="fast"):
    gen = _prepare(gen_wav, sr, target_sr, window_s)
    ref = _prepare(ref_wav, sr, target_sr, window_s)
    return (onset_strength(gen, target_sr, hop_length, n_fft, n_mels, odf_impl), onset_strength(ref, target_sr, hop_length, n_fft, n_mels, odf_impl))


def _nan_with_warning(exc: UndefinedMetric, name: str) -> float:
    warnings.warn(f"{name} is NaN: {exc}", UndefinedMetricWarning, stacklevel=3)
    return math.nan


def w_dis(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = ODF_SAMPLE_RATE, *, hop_length: int = ODF_HOP_LENGTH, n_fft: int = ODF_N_FFT, n_mels: int = ODF_N_MELS, window_s: float = 8.0, silent_policy: str = "nan", odf_impl: str = "fast") -> float:
    """W-dis (frames) between a generated and a reference waveform, both at ``sr`` Hz.

    Both are mixed to mono, resampled to 16 kHz (soxr HQ) when ``sr`` differs, cut or zero-padded
    to the first ``window_s`` seconds (0 keeps them whole), and compared through their
    onset-strength curves (TiVA Sec. 4.1.3; ``odf_impl="librosa"`` uses librosa's own curve).
    Returns NaN with an ``UndefinedMetricWarning`` when a side is digital silence (see
    ``silent_policy``).
    """
    g, r = _odfs(gen_wav, ref_wav, sr, ODF_SAMPLE_RATE, hop_length, n_fft, n_mels, window_s, odf_impl)
    try:
        return w_dis_from_odf(g, r, silent_policy)
    except UndefinedMetric as exc:
        return _nan_with_warning(exc, "w_dis")


def dtw_dis(gen_wav: np.ndarray, ref_wav: np.ndarray, sr: int = ODF_SAMPLE_RATE, *, hop_length: int = ODF_HOP_LENGTH, n_fft: int = ODF_N_FFT, n_mels: int = ODF_N_MELS, window_s: float = 8.0, method: str = "exact", radius: int = 1, odf_impl: str = "fast") -> float:
    """DTW-dis between a generated and a reference waveform (same preparation as ``w_dis``).

    ``method="exact"`` (default, compiled) or ``"fastdtw"`` with ``radius`` (approximate).
    """
    g, r = _odfs(gen_wav, ref_wav, sr, ODF_SAMPLE_RATE, hop_length, n_fft, n_mels, window_s, odf_impl)
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


SYNC_METRICS = ("w_dis", "dtw_dis")
# what a sync worker process imports before forking: nothing heavy (no librosa/numba/torch/av)


def _pair_fields(pair: Any) -> tuple[str, Any, Any]:
    """``(key, gen, ref)`` of a pairing ``Pair`` (``.key``, ``.gen``, ``.ref``) or a 3-tuple."""
    if isinstance(pair, tuple):
        return pair
    return pair.key, pair.gen, pair.ref


class Pcm16Window:
    """A mono 16-bit PCM WAV clip at the sync sample rate and at least a window long, kept as its
    integers: what ``AudioClip.load`` would tell about it (``native_sr``, ``padded_s``,
    ``is_silent``) and its window ``samples`` (int16, ``round(window_s * sr)``), whose curve
    ``OnsetStrengthPlan.of_pcm16`` computes bit for bit as from the float clip, without
    converting it."""

    def __init__(self, samples: np.ndarray, sr: int, padded_s: float = 0.0):
        self.samples, self.native_sr, self.padded_s = samples, sr, padded_s

    @property
    def is_silent(self) -> bool:
        return not self.samples.any()  # a peak below 1e-8 is a peak of 0 for 16-bit samples

    @classmethod
    def load(cls, path, audio_cfg: Any, sr: int) -> "Pcm16Window | None":
        """The clip when it qualifies (and is long enough for ``audio_cfg.min_duration_s``), else None."""
        if audio_cfg.window_s <= 0:
            return None
        n = int(round(audio_cfg.window_s * sr))
        read = read_pcm16_mono(path, rate=sr, min_frames=max(n, math.ceil(audio_cfg.min_duration_s * sr)))
        if read is None:
            return None
        ints, rate = read
        duration = ints.shape[0] / rate
        if duration < audio_cfg.min_duration_s:  # the frame count's rounding: AudioClip.load says why
            return None
        return cls(ints[:n], rate, max(0.0, audio_cfg.window_s - duration))  # AudioClip.padded_s: above 0 only where the window rounds down


def _load_pair(key: str, gen_path, ref_path, audio_cfg: Any, sr: int | None = None) -> tuple[Any, Any] | dict:
    """Both clips of a pair (``AudioClip``, or ``Pcm16Window`` where the file qualifies and ``sr``
    is given), or a skipped entry naming the side and its problem."""
    clips = []
    for side, path in (("generated", gen_path), ("reference", ref_path)):
        fast = Pcm16Window.load(path, audio_cfg, sr) if sr is not None else None
        if fast is not None:
            clips.append(fast)
            continue
        try:
            clips.append(AudioClip.load(path, audio_cfg.window_s, audio_cfg.min_duration_s))
        except InputError as exc:
            fix = f" ({exc.fix})" if exc.fix else ""
            return {"clip": key, "reason": f"{side} file {exc.reason}{fix}", "path": str(path)}
    return clips[0], clips[1]


def _curve(clip: Any, s: Any, plans: dict[int, OnsetStrengthPlan]) -> np.ndarray:
    """The onset-strength curve of one clip's window at ``s`` (the sync settings), through a plan
    per window length (``plans``, filled as needed) for the default implementation. A
    ``Pcm16Window`` comes only with the default implementation (see ``_load_pair``)."""
    pcm16 = isinstance(clip, Pcm16Window)
    y = clip.samples if pcm16 else clip.at(s.sample_rate)
    impl = getattr(s, "odf_impl", "fast")
    if impl != "fast":
        return onset_strength(y, s.sample_rate, s.hop_length, s.n_fft, s.n_mels, impl)
    plan = plans.get(y.shape[-1])
    if plan is None:
        plan = plans[y.shape[-1]] = OnsetStrengthPlan(y.shape[-1], s.sample_rate, s.hop_length, s.n_fft, s.n_mels)
    return plan.of_pcm16(y) if pcm16 else plan(y)


def score_sync_chunk(pairs: Sequence[Any], cfg: Any, names: Sequence[str] = SYNC_METRICS) -> list[ClipResult | dict]:
    """Score W-dis / DTW-dis for a list of pairs; one outcome per pair, in order.

    ``pairs``: pairing ``Pair`` objects or ``(key, gen_path, ref_path)`` tuples. ``cfg``: a
    ``ScoreConfig`` (its ``audio`` window and ``sync`` settings are used). A pair whose file
    cannot be decoded gives a skipped entry ``{"clip", "reason", "path"}``; otherwise a
    ``ClipResult`` with ``values`` for ``names`` (NaN with the reason in ``undefined`` where a
    value does not exist). Each clip's onset strength is computed right after it is decoded (its
    samples are still in cache; one ``OnsetStrengthPlan`` per window length serves the chunk);
    then the pairs whose curves have equal lengths get W-dis and DTW-dis in one ``sync_from_odfs``
    call. A pair whose curves fail, or a group whose call fails, is scored on its own (the error
    as the reason), so an odd clip only affects itself.
    """
    s = cfg.sync
    outcomes: list[ClipResult | dict] = []
    produced: dict[int, dict] = {}
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    plans: dict[int, OnsetStrengthPlan] = {}
    for pair in pairs:
        key, gen_path, ref_path = _pair_fields(pair)
        loaded = _load_pair(key, gen_path, ref_path, cfg.audio, s.sample_rate if getattr(s, "odf_impl", "fast") == "fast" else None)
        if isinstance(loaded, dict):
            outcomes.append(loaded)
            continue
        gen, ref = loaded
        outcomes.append(ClipResult(
            clip=key, gen=str(gen_path), ref=str(ref_path), gen_sr=gen.native_sr, ref_sr=ref.native_sr,
            gen_padded_s=round(gen.padded_s, 6), ref_padded_s=round(ref.padded_s, 6),
            gen_silent=gen.is_silent, ref_silent=ref.is_silent,
        ))
        try:
            g, r = _curve(gen, s, plans), _curve(ref, s, plans)
        except Exception as exc:  # a bug or an odd signal must not end a long run
            produced[len(outcomes) - 1] = _error_values(exc)
            continue
        groups.setdefault((g.shape[-1], r.shape[-1]), []).append((len(outcomes) - 1, g, r))
    for group in groups.values():
        produced.update(_score_group(group, s))
    for index, values in produced.items():
        result = outcomes[index]
        for name in names:
            value = values[name]
            if isinstance(value, UndefinedMetric):
                result.values[name] = math.nan
                result.undefined[name] = str(value)
            else:
                result.values[name] = float(value)
    return outcomes


def _error_values(exc: Exception) -> dict:
    reason = UndefinedMetric(f"error in sync metrics: {type(exc).__name__}: {exc}")
    return {name: reason for name in SYNC_METRICS}


def _score_group(group: list[tuple[int, np.ndarray, np.ndarray]], s: Any) -> Iterator[tuple[int, dict]]:
    """``(outcome index, {name: value})`` for every pair of one group of equal-length curves."""
    try:
        values = sync_from_odfs(np.stack([g for _, g, _ in group]), np.stack([r for _, _, r in group]), dtw=s.dtw,
                                fastdtw_radius=s.fastdtw_radius, silent_policy=s.silent_policy)
        for k, (index, _, _) in enumerate(group):
            yield index, {name: values[name][k] for name in SYNC_METRICS}
        return
    except Exception:  # noqa: BLE001 - fall back to one pair at a time below
        pass
    for index, g, r in group:
        try:
            values = _pair_values(g, r, s)
        except Exception as exc:  # a bug or an odd signal must not end a long run
            values = _error_values(exc)
        yield index, values


def _pair_values(g_odf: np.ndarray, r_odf: np.ndarray, s: Any) -> dict:
    out: dict = {"dtw_dis": dtw_dis_from_odf(g_odf, r_odf, s.dtw, s.fastdtw_radius)}
    try:
        out["w_dis"] = w_dis_from_odf(g_odf, r_odf, s.silent_policy)
    except UndefinedMetric as exc:
        out["w_dis"] = exc
    return out
