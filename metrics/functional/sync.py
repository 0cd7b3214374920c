"""Synchronisation maths on onset-strength curves (TiVA Sec. 4.1.3) and energy envelopes.

ODF: ``librosa.onset.onset_strength`` with ``hop_length=1280`` at 16 kHz (80 ms frames; an 8-s
window gives 101 frames). W-dis treats each ODF as a distribution over the frame index, with the
ODF values as weights, and returns the 1-D Wasserstein-1 distance in frames. DTW-dis is the
exact dynamic-time-warping cost with local cost ``|a_i - b_j|`` divided by the number of frames.
"""

from __future__ import annotations

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric

_DTW_KERNEL = None


def onset_strength(y: np.ndarray, sr: int = 16000, hop_length: int = 1280, n_fft: int = 2048, n_mels: int = 128) -> np.ndarray:
    """Onset-strength curve, shape ``(1 + len(y) // hop_length,)``, float32, >= 0.

    Exactly ``librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length, n_fft=n_fft,
    n_mels=n_mels)`` (log-power mel spectral flux, mean over bands). Digital silence gives an
    all-zero curve.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels)


def wasserstein_on_grid(u_weights: np.ndarray, v_weights: np.ndarray) -> float:
    """Wasserstein-1 distance between two weightings of the integer grid ``0, 1, 2, ...``.

    ``u_weights`` (length n) and ``v_weights`` (length m) are non-negative; each is normalised
    to sum 1 (a shorter one is extended with zero weights). Equals
    ``scipy.stats.wasserstein_distance(arange(n), arange(m), u_weights, v_weights)``, computed as
    the L1 distance between the two CDFs, in grid steps. Raises ``UndefinedMetric`` when a side
    has no mass.
    """
    u = np.asarray(u_weights, dtype=np.float64)
    v = np.asarray(v_weights, dtype=np.float64)
    if (u < 0).any() or (v < 0).any():
        raise ValueError("weights must be non-negative")
    n = max(u.size, v.size)
    u = np.pad(u, (0, n - u.size))
    v = np.pad(v, (0, n - v.size))
    su, sv = u.sum(), v.sum()
    if su <= 0 or sv <= 0:
        raise UndefinedMetric("an onset-strength curve is all zero (silent clip)")
    cdf_gap = np.cumsum(u / su - v / sv)
    return float(np.abs(cdf_gap[:-1]).sum())


def w_dis_from_odf(gen_odf: np.ndarray, ref_odf: np.ndarray, silent_policy: str = "nan") -> float:
    """W-dis between two ODFs, in frames.

    silent_policy ``"nan"``: an all-zero ODF raises ``UndefinedMetric`` naming the silent side.
    ``"uniform"``: an all-zero ODF is replaced by a uniform weighting (no timing information);
    both silent gives 0.
    """
    gen_silent = not np.any(np.asarray(gen_odf) > 0)
    ref_silent = not np.any(np.asarray(ref_odf) > 0)
    if gen_silent or ref_silent:
        if silent_policy == "uniform":
            if gen_silent and ref_silent:
                return 0.0
            gen_odf = np.ones(len(gen_odf)) if gen_silent else gen_odf
            ref_odf = np.ones(len(ref_odf)) if ref_silent else ref_odf
        else:
            side = "generated and reference" if gen_silent and ref_silent else ("generated" if gen_silent else "reference")
            raise UndefinedMetric(f"{side} onset-strength curve is all zero (silent); W-dis undefined")
    return wasserstein_on_grid(gen_odf, ref_odf)


def _build_dtw_kernel():
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(a, b):  # pragma: no cover - compiled
        n, m = a.shape[0], b.shape[0]
        prev = np.full(m + 1, np.inf)
        cur = np.full(m + 1, np.inf)
        prev[0] = 0.0
        for i in range(1, n + 1):
            cur[0] = np.inf
            ai = a[i - 1]
            for j in range(1, m + 1):
                best = prev[j - 1]
                if prev[j] < best:
                    best = prev[j]
                if cur[j - 1] < best:
                    best = cur[j - 1]
                cur[j] = abs(ai - b[j - 1]) + best
            prev, cur = cur, prev
        return prev[m]

    return kernel


def dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Exact DTW cost between 1-D sequences with local cost ``|a_i - b_j|``.

    Steps (1,0), (0,1), (1,1), unit weights, path from (0,0) to (n-1,m-1); O(n*m) time,
    O(m) memory, compiled with numba (first call compiles, later calls take microseconds).
    """
    global _DTW_KERNEL
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError("dtw_cost expects two non-empty 1-D sequences")
    if _DTW_KERNEL is None:
        _DTW_KERNEL = _build_dtw_kernel()
    return float(_DTW_KERNEL(a, b))


def fastdtw_cost(a: np.ndarray, b: np.ndarray, radius: int = 1) -> float:
    """Approximate DTW cost from the PyPI ``fastdtw`` package (>= exact cost; slow, pure Python).

    Offered only to reproduce numbers that were computed with fastdtw; the radius is recorded.
    """
    from fastdtw import fastdtw

    cost, _ = fastdtw(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), radius=radius, dist=lambda x, y: abs(x - y))
    return float(cost)


def dtw_dis_from_odf(gen_odf: np.ndarray, ref_odf: np.ndarray, method: str = "exact", radius: int = 1) -> float:
    """DTW-dis: DTW cost between the ODFs divided by the reference's number of frames.

    Defined for silent clips too (an all-zero ODF simply costs the other curve's mass).
    """
    cost = dtw_cost(gen_odf, ref_odf) if method == "exact" else fastdtw_cost(gen_odf, ref_odf, radius)
    return cost / len(ref_odf)


def energy_envelope(y: np.ndarray, frame_length: int = 2048, hop_length: int = 1280) -> np.ndarray:
    """Frame RMS, centred frames (zero padding), shape ``(1 + len(y) // hop_length,)``."""
    y = np.asarray(y, dtype=np.float64)
    pad = frame_length // 2
    padded = np.pad(y, (pad, pad))
    n_frames = 1 + y.size // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:n_frames]
    return np.sqrt(np.mean(frames**2, axis=1))


def energy_l1_from_wav(gen: np.ndarray, ref: np.ndarray, frame_length: int = 2048, hop_length: int = 1280) -> float:
    """Mean |e_gen - e_ref| over frames of the RMS envelopes, each scaled to a peak of 1.

    Scale-free (loudness differences do not count, timing of energy does); in [0, 1]. Raises
    ``UndefinedMetric`` when either side is silent (no envelope to normalise).
    """
    e_gen = energy_envelope(gen, frame_length, hop_length)
    e_ref = energy_envelope(ref, frame_length, hop_length)
    n = max(e_gen.size, e_ref.size)
    e_gen, e_ref = np.pad(e_gen, (0, n - e_gen.size)), np.pad(e_ref, (0, n - e_ref.size))
    peaks = e_gen.max(), e_ref.max()
    if min(peaks) <= 0:
        side = "generated" if peaks[0] <= 0 else "reference"
        raise UndefinedMetric(f"{side} audio is silent; energy envelope cannot be normalised")
    return float(np.mean(np.abs(e_gen / peaks[0] - e_ref / peaks[1])))
