"""Onset strength (spectral flux of the log-power mel spectrogram), fast and exact.

The same curve as ``librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length, n_fft=n_fft,
n_mels=n_mels)`` with librosa's other defaults (Hann window, centred frames with zero padding,
power 2, Slaney mel bank from 0 Hz to ``sr / 2``, ``power_to_db`` with ``amin=1e-10``,
``top_db=80`` relative to the clip's own maximum, lag 1, no maximum filter, mean over bands, no
detrending):

* the same arithmetic as librosa: float32 samples times the float64 window, a float64 FFT
  (Intel MKL's through ``mkl_fft`` where installed, a dependency on Linux x86-64, about 4x
  faster; else numpy's pocketfft, as librosa's; ``TIVA_BENCH_FFT=numpy|mkl|auto`` chooses) rounded
  to complex64, float32 power and mel product, float32 dB and band mean in band order. A float32 FFT would be twice as fast but is not accurate
  enough: its rounding noise, relative to a frame's energy, reaches the quiet bands that stay
  above the 80-dB floor (errors up to 5e-6 of the curve's maximum and 4e-5 relative on W-dis,
  measured);
* the mel filter bank, the window and the FFT's buffers are built once per setting (librosa
  rebuilds the bank on every call, which costs more than the transform at the protocol's
  settings): ``OnsetStrengthPlan`` holds them for clips of one length;
* a clip goes through in chunks of 16 frames, so the frames, their spectrum and its power stay
  in the core's cache, and every pass works in place (no allocation per clip);
* the mel product only visits the bank's non-zero blocks (``mel_bank_bands``, 8x fewer
  multiply-adds at 128 mels). It adds the same terms in another order than librosa's dense
  product, which moves a mel value by a few float32 roundings: invisible next to a curve's
  maximum except on near-flat curves (stationary signals, maximum below ``DENSE_BELOW_DB``),
  which are computed again with librosa's dense product (bitwise librosa's values, same BLAS);
* librosa itself is not imported: it pulls in numba and adds seconds to every worker process's
  start. The bank is the Slaney formula and the window scipy's, both tested equal to librosa's.

Agreement with librosa: every frame within 1e-5 of the curve's maximum; measured at most 3.5e-7
(tones, chirps, noise, bursts, DC, silence at five settings and lengths from 0.1 s) and 1e-7 (600
procedurally rendered 8-s event clips). Digital silence gives exactly zero, as in librosa.
``tests/test_onset_strength.py`` checks this against librosa on clicks, tones, noise, chirps,
near-floor bursts, DC, silence, clips from 0 samples to minutes, several rates and settings.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import numpy as np
import scipy.fft

from tiva_bench.core.audio import PCM16_SCALE

AMIN = 1e-10  # librosa.power_to_db's floor on power
TOP_DB = 80.0  # librosa.power_to_db's dynamic range below the clip's maximum
_NUMPY_FFT_OUT = int(np.__version__.split(".")[0]) >= 2  # numpy.fft functions take out=
_CHUNK_FRAMES = 16  # frames per FFT call: 0.25 MB of float64 frames at n_fft 2048; with the spectra and the window about 1 MB, in a core's L2 cache (16 ran 5% faster than 32 and 8 with two workers, measured)
_SEGMENT_FRAMES = 4096  # most frames of power held at once (16 MB at n_fft 2048); longer clips in equal segments
# A curve whose maximum is below this (dB) is computed again with librosa's own (dense) mel product:
# the banded product sums the same terms in another order, which moves a value by up to about
# 2e-5 dB (a few float32 roundings), i.e. 1e-5 of the maximum only for near-flat curves
# (stationary signals); above 8 dB that is at most 2.5e-6 of the maximum, a 4x margin.
DENSE_BELOW_DB = 8.0


def hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    f = np.asarray(frequencies, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = f / f_sp
    log_part = f >= min_log_hz
    return np.where(log_part, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    m = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel_filter_bank(sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, 1 + n_fft // 2)``, float32.

    Equals ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``
    (``fmax=None`` means ``sr / 2``): filter ``i`` rises from mel point ``i`` to ``i + 1`` and
    falls to ``i + 2`` over ``n_mels + 2`` points evenly spaced in mel, scaled by
    ``2 / (f[i + 2] - f[i])``. Filters narrower than one FFT bin are all zero, as in librosa.
    Cached; the returned array is read-only.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights = (weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]).astype(np.float32)  # float32 then scaled, as librosa
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=32)
def mel_bank_bands(sr: int, n_fft: int, n_mels: int = 128, group: int = 16) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The bank cut into groups of ``group`` consecutive filters and the FFT bins they touch.

    Each entry is ``(first_filter, end_filter, first_bin, end_bin, weights)`` with ``weights``
    the contiguous ``(end_filter - first_filter, end_bin - first_bin)`` block of the bank; every
    non-zero weight of the bank lies in exactly one block. The product with a power spectrum
    then costs about ``n_bins * group`` multiply-adds per frame instead of
    ``n_bins * n_mels`` (8x fewer at 128 mels), with the same terms summed. Groups of 16 keep
    BLAS on the summation order of librosa's dense product for most values (measured on 1,000
    clips: W-dis from these curves equals librosa's within 4e-9 relative on average, against
    9e-8 with groups of 8, which make the whole curve only 3% faster).
    """
    bank = mel_filter_bank(sr, n_fft, n_mels)
    out = []
    for first in range(0, n_mels, group):
        end = min(n_mels, first + group)
        cols = np.flatnonzero(bank[first:end].any(axis=0))
        lo, hi = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
        weights = np.ascontiguousarray(bank[first:end, lo:hi])
        weights.setflags(write=False)
        out.append((first, end, lo, hi, weights))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float64, read-only: ``scipy.signal.get_window("hann", n_fft)`` (the
    window librosa uses), computed by scipy's own formula so the values are identical."""
    if n_fft <= 1:
        w = np.ones(n_fft)
    else:
        fac = np.linspace(-np.pi, np.pi, n_fft + 1)
        w = np.zeros(n_fft + 1)
        w += 0.5 * np.cos(0 * fac)
        w += 0.5 * np.cos(1 * fac)
        w = w[:-1].copy()
    w.setflags(write=False)
    return w


def n_frames(n_samples: int, hop_length: int, n_fft: int) -> int:
    """Frames of a centred STFT: ``1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length``."""
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


class OnsetStrengthPlan:
    """Onset strength of clips of ``n`` samples at one setting, with buffers reused across clips.

    ``plan(y)``: the curve of one clip ``y`` ``(n,)`` (float; cast to float32 as librosa gets it),
    a new ``(t,)`` float32 array, ``t = n_frames(n, hop_length, n_fft)``. The filter bank and the
    window come from caches; the buffers (about 2 MB at the protocol's settings: one chunk of
    ``_CHUNK_FRAMES`` frames in float64, its spectrum, the clip's power (in segments of at most
    ``_SEGMENT_FRAMES`` frames) and mel spectrogram) are allocated once. Building a plan costs about as much as one clip, so scoring
    clip by clip (each right after it is decoded, while its samples are still in cache) costs
    nothing over batching. Not thread-safe: one plan per thread.
    """

    def __init__(self, n: int, sr: int = 16000, hop_length: int = 1280, n_fft: int = 2048, n_mels: int = 128):
        if min(sr, hop_length, n_fft, n_mels) <= 0 or n < 0:
            raise ValueError("sr, hop_length, n_fft and n_mels must be positive and n >= 0")
        self.n, self.hop, self.n_fft, self.t = int(n), int(hop_length), int(n_fft), n_frames(n, hop_length, n_fft)
        self.bands = mel_bank_bands(int(sr), int(n_fft), int(n_mels))
        self.bank = mel_filter_bank(int(sr), int(n_fft), int(n_mels))
        self.lead = 1 + n_fft // (2 * hop_length)  # librosa pads the lag and the centring offset in front
        segments = max(1, -(-self.t // _SEGMENT_FRAMES))
        self.segment = max(1, -(-self.t // segments))  # equal segments: none short (BLAS sums short ones in another order)
        chunk = max(1, min(self.t, _CHUNK_FRAMES))
        self.windowed = np.empty((chunk, n_fft))
        self.window_rows = _window_rows(n_fft, chunk)
        self.pcm16_window_rows = _window_rows(n_fft, chunk, PCM16_SCALE)
        self.spec = np.empty((chunk, n_fft // 2 + 1), dtype=np.complex64)
        self.spec128 = np.empty((chunk, n_fft // 2 + 1), dtype=np.complex128)
        self.power = np.empty((self.segment, n_fft // 2 + 1), dtype=np.float32)
        self.mel = np.empty((n_mels, max(0, self.t)), dtype=np.float32)
        self.flux = np.empty((n_mels, max(0, self.t - 1)), dtype=np.float32)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        if np.ndim(y) != 1 or np.shape(y)[0] != self.n:
            raise ValueError(f"expected a waveform of shape ({self.n},), got {np.shape(y)}")
        if not np.issubdtype(np.asarray(y).dtype, np.floating):
            raise ValueError("expected floating-point samples")
        return self._curve(np.ascontiguousarray(y, dtype=np.float32), self.window_rows)  # float32, as librosa gets it

    def of_pcm16(self, samples: np.ndarray) -> np.ndarray:
        """The curve of 16-bit PCM ``samples`` ``(n,)`` int16, bit for bit ``self(samples / 32768)``
        in float32 (what ``decode_audio`` gives): the integers are framed as they are and the
        window carries the 2**-15 (``x * (w * 2**-15)`` and ``(x * 2**-15) * w`` are the same
        float64 number: a power of two scales without rounding). Saves converting the clip."""
        if np.ndim(samples) != 1 or np.shape(samples)[0] != self.n or np.asarray(samples).dtype != np.int16:
            raise ValueError(f"expected int16 samples of shape ({self.n},), got {np.asarray(samples).dtype} {np.shape(samples)}")
        return self._curve(np.ascontiguousarray(samples), self.pcm16_window_rows)

    def _curve(self, row: np.ndarray, window_rows: np.ndarray) -> np.ndarray:
        out = np.zeros(max(0, self.t), dtype=np.float32)
        if self.t > 0:
            _flux_curve(_log_mel_db(row, self, window_rows=window_rows), out, self.lead, self.flux)
            if out.max() < DENSE_BELOW_DB:  # a near-flat curve: librosa's own summation order
                if self.segment >= self.t:  # the clip's power is still in the buffer
                    _mel_db_from_power(self, 0, self.t, dense=True)
                else:
                    _log_mel_db(row, self, dense=True, window_rows=window_rows)
                _flux_curve(self.mel, out, self.lead, self.flux)
        return out


@functools.lru_cache(maxsize=8)
def _window_rows(n_fft: int, rows: int, scale: float = 1.0) -> np.ndarray:
    """The Hann window (times ``scale``, a power of two) repeated ``rows`` times, ``(rows, n_fft)``
    float64, read-only: one chunk of frames is windowed by one flat product (1.7x faster than
    broadcasting the window)."""
    out = np.ascontiguousarray(np.broadcast_to(hann_window(n_fft) * scale, (rows, n_fft)))
    out.setflags(write=False)
    return out


FFT_BACKENDS = ("auto", "mkl", "numpy")


@functools.lru_cache(maxsize=4)
def _mkl_rfft(backend: str):
    """``mkl_fft.rfft`` when ``backend`` allows it and the package is installed, else None.

    ``backend`` ("auto", "mkl" or "numpy") comes from ``TIVA_BENCH_FFT`` (default "auto": MKL where
    installed). Intel's MKL computes these float64 transforms about 4x faster than numpy's
    pocketfft on x86-64 (measured on 2048-point frames) with the same values to 1e-16 relative,
    before the rounding to complex64. Worker processes run it with one thread (``MKL_NUM_THREADS``)."""
    if backend not in FFT_BACKENDS:
        raise ValueError(f"TIVA_BENCH_FFT must be one of {', '.join(FFT_BACKENDS)}, got {backend!r}")
    if backend == "numpy":
        return None
    try:
        import mkl_fft
        usable = int(str(mkl_fft.__version__).split(".")[0]) >= 2  # 1.x's rfft returns another layout
    except (ImportError, ValueError):
        usable = False
    if not usable:
        if backend == "mkl":
            raise ImportError("TIVA_BENCH_FFT=mkl needs mkl_fft 2 or newer: pip install 'mkl_fft>=2'")
        return None
    return mkl_fft.rfft


def fft_backend() -> str:
    """The FFT library the onset strength uses in this process: "mkl" or "numpy"."""
    return "mkl" if _mkl_rfft(os.environ.get("TIVA_BENCH_FFT", "auto")) is not None else "numpy"


def _rfft(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``rfft`` of float64 rows into ``out`` (complex128): MKL's where installed (see ``_mkl_rfft``),
    else numpy's pocketfft writing into the given buffer (numpy >= 2; 2% faster than scipy's, which
    allocates); the same values to float64 rounding."""
    mkl_rfft = _mkl_rfft(os.environ.get("TIVA_BENCH_FFT", "auto"))
    if mkl_rfft is not None:
        return mkl_rfft(frames, axis=-1, out=out)
    if _NUMPY_FFT_OUT:
        return np.fft.rfft(frames, axis=-1, out=out)
    return scipy.fft.rfft(frames, axis=-1)


class _Framing:
    """The centred frames of one clip ``row`` (contiguous float32 or int16): frame ``f`` holds samples
    ``f * hop_length - n_fft // 2`` onwards, zero outside the clip (librosa's zero padding).
    Frames ``lo .. hi - 1`` lie inside the clip and are a strided view ``inside`` of it; the few
    at the edges are assembled one by one."""

    def __init__(self, row: np.ndarray, hop_length: int, n_fft: int, t: int):
        n, half = row.shape[0], n_fft // 2
        self.row, self.hop, self.half = row, hop_length, half
        self.lo = min(-(-half // hop_length), t)  # first frame that starts inside the clip
        self.hi = max(self.lo, min(t, (n + half - n_fft) // hop_length + 1)) if n >= n_fft - half else self.lo
        self.inside = None
        if self.hi > self.lo:  # a strided view (np.ndarray directly: as_strided costs 20 us a call)
            step = row.strides[0]
            self.inside = np.ndarray((self.hi - self.lo, n_fft), row.dtype, row, (self.lo * hop_length - half) * step, (hop_length * step, step))

    def into(self, out: np.ndarray, first: int) -> None:
        """Frames ``first .. first + len(out) - 1`` as float64 into ``out`` ``(k, n_fft)``."""
        k, n_fft = out.shape
        lo, hi = max(first, self.lo), min(first + k, self.hi)  # the frames of this chunk inside the clip
        if hi > lo:
            np.copyto(out[lo - first:hi - first], self.inside[lo - self.lo:hi - self.lo])  # float32 or int16 -> float64, exact
        else:
            lo = hi = first + k
        n = self.row.shape[0]
        for f in (*range(first, lo), *range(hi, first + k)):
            start = f * self.hop - self.half
            a, b = max(0, start), min(n, start + n_fft)
            frame = out[f - first]
            frame[:] = 0.0
            if b > a:
                frame[a - start:b - start] = self.row[a:b]


def _log_mel_db(row: np.ndarray, ws: OnsetStrengthPlan, dense: bool = False, window_rows: np.ndarray | None = None) -> np.ndarray:
    """Log-power mel spectrogram of one clip in dB (before the top-db floor), ``(n_mels, t)``.

    ``row``: the clip's float32 samples (or int16 ones, with ``window_rows`` carrying their scale;
    default ``ws.window_rows``). librosa's arithmetic, one
    chunk of ``_CHUNK_FRAMES`` frames at a time (the working set stays in the core's cache):
    frames times the float64 window, a float64 FFT rounded to complex64, ``|.|`` in float32 then
    squared; then per segment of frames the float32 mel product and ``10 log10(max(., amin))`` in
    float32 (``_mel_db_from_power``). Returns ``ws.mel`` (overwritten by the next clip).
    """
    t = ws.t
    window_rows = ws.window_rows if window_rows is None else window_rows
    framing = _Framing(row, ws.hop, ws.n_fft, t)
    for seg in range(0, t, ws.segment):
        seg_end = min(t, seg + ws.segment)
        for s in range(seg, seg_end, ws.windowed.shape[0]):
            e = min(seg_end, s + ws.windowed.shape[0])
            windowed = ws.windowed[: e - s]
            framing.into(windowed, s)
            flat = windowed.reshape(-1)
            np.multiply(flat, window_rows[: e - s].reshape(-1), out=flat)  # as librosa: float64 window x samples
            spec = ws.spec[: e - s]
            np.copyto(spec, _rfft(windowed, ws.spec128[: e - s]), casting="same_kind")  # complex128 -> complex64
            power = ws.power[s - seg:e - seg]
            np.abs(spec, out=power)
            np.square(power, out=power)
        _mel_db_from_power(ws, seg, seg_end, dense)
    return ws.mel


def _mel_db_from_power(ws: OnsetStrengthPlan, seg: int, seg_end: int, dense: bool) -> None:
    """Frames ``seg .. seg_end - 1`` of ``ws.mel`` in dB from the power in ``ws.power``.

    ``dense=False``: the product over the bank's non-zero blocks only (``mel_bank_bands``, 8x
    fewer multiply-adds); ``dense=True``: the whole bank times the power, the product librosa
    makes (the same BLAS call, so the same summation order: bitwise librosa's values on the same
    BLAS), for curves whose maximum is too small for the banded order (``DENSE_BELOW_DB``).
    """
    mel = ws.mel[:, seg:seg_end]
    power_t = ws.power[: seg_end - seg].T  # (bins, frames), a transposed view: BLAS reads it as is
    if dense:
        np.matmul(ws.bank, power_t, out=mel)
    else:
        for first, end, lo, hi, weights in ws.bands:
            if hi > lo:
                np.matmul(weights, power_t[lo:hi], out=mel[first:end])
            else:  # filters narrower than one bin: zero, as in librosa
                mel[first:end] = 0.0
    np.maximum(mel, np.float32(AMIN), out=mel)
    np.log10(mel, out=mel)
    np.multiply(mel, np.float32(10.0), out=mel)


def _flux_curve(db: np.ndarray, out: np.ndarray, lead: int, flux: np.ndarray) -> None:
    """Onset strength from a clip's dB mel spectrogram ``(n_mels, t)`` (overwritten), into ``out``
    ``(t,)``: floor at the maximum minus ``TOP_DB``, positive first difference over time (in the
    buffer ``flux`` ``(n_mels, t - 1)``), mean over bands (float32 sum, bands added in order,
    divided as librosa's ``np.mean(axis=-2)`` divides), shifted right by ``lead`` frames (librosa's
    lag and centring offset; the first ``lead`` stay zero)."""
    floor = db.max() - np.float32(TOP_DB)
    if not np.isfinite(floor):  # NaN/Inf samples reach the clip's maximum
        raise ValueError("waveform holds NaN/Inf samples")
    np.maximum(db, floor, out=db)
    np.subtract(db[:, 1:], db[:, :-1], out=flux)
    np.maximum(flux, np.float32(0.0), out=flux)
    keep = max(0, min(out.shape[0] - lead, flux.shape[1]))
    if keep:
        mean = out[lead:lead + keep]
        np.add.reduce(flux[:, :keep], axis=0, out=mean)
        np.true_divide(mean, np.intp(flux.shape[0]), out=mean, casting="unsafe")  # np.mean's division (in float64, rounded once)


def onset_strength_batch(
    y: np.ndarray | Sequence[np.ndarray],
    sr: int = 16000,
    hop_length: int = 1280,
    n_fft: int = 2048,
    n_mels: int = 128,
) -> np.ndarray:
    """Onset-strength curves of equal-length clips, ``(B, n) -> (B, n_frames)`` float32, >= 0.

    ``y``: real waveforms at ``sr`` Hz, as an array ``(B, n)`` or a sequence of ``B`` arrays
    ``(n,)`` (not copied into one array), or one array ``(n,)`` (then the result is
    ``(n_frames,)``); ``n_frames = 1 + n // hop_length`` for an even ``n_fft``. Any length works,
    including clips shorter than one frame (one frame, value 0). Each curve is librosa's (see the
    module docstring) and depends on its clip only; the clips go through one
    ``OnsetStrengthPlan`` (its buffers, about 2 MB for 8-s clips, whatever ``B``). Raises ``ValueError`` for
    non-finite samples, as librosa does.
    """
    single = isinstance(y, np.ndarray) and y.ndim == 1
    rows = [y] if single else list(y)
    if any(np.ndim(row) != 1 for row in rows) or len({np.shape(row)[0] for row in rows}) > 1:
        raise ValueError("expected waveforms of shape (n,) or (B, n) (equal lengths)")
    if any(not np.issubdtype(np.asarray(row).dtype, np.floating) for row in rows):
        raise ValueError("expected floating-point samples")
    n = y.shape[-1] if isinstance(y, np.ndarray) else (np.shape(rows[0])[0] if rows else 0)
    plan = OnsetStrengthPlan(n, sr, hop_length, n_fft, n_mels)
    out = np.zeros((len(rows), max(0, plan.t)), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i] = plan(row)
    return out[0] if single else out


def onset_strength_librosa(y: np.ndarray, sr: int = 16000, hop_length: int = 1280, n_fft: int = 2048, n_mels: int = 128) -> np.ndarray:
    """librosa's own ``onset_strength`` on one clip (the reference implementation), float32."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels)
