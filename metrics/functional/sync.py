"""Synchronisation maths on onset-strength curves (TiVA Sec. 4.1.3) and energy envelopes.

ODF: ``librosa.onset.onset_strength`` with ``hop_length=1280`` at 16 kHz (80 ms frames; an 8-s
window gives 101 frames). W-dis treats each ODF as a distribution over the frame index, with the
ODF values as weights, and returns the 1-D Wasserstein-1 distance in frames. DTW-dis is the
exact dynamic-time-warping cost with local cost ``|a_i - b_j|`` divided by the number of frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.onset_strength import onset_strength_batch, onset_strength_librosa

# The protocol's onset-strength settings (TiVA Sec. 4.1.3; docs/PROTOCOL.md): defined once, here.
ODF_SAMPLE_RATE = 16000
ODF_HOP_LENGTH = 1280
ODF_N_FFT = 2048
ODF_N_MELS = 128

_DTW_KERNEL = None


ODF_IMPLS = ("fast", "librosa")


def onset_strength(y: np.ndarray, sr: int = ODF_SAMPLE_RATE, hop_length: int = ODF_HOP_LENGTH, n_fft: int = ODF_N_FFT, n_mels: int = ODF_N_MELS, impl: str = "fast") -> np.ndarray:
    """Onset-strength curve, shape ``(1 + len(y) // hop_length,)``, float32, >= 0.

    ``librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length, n_fft=n_fft,
    n_mels=n_mels)`` (log-power mel spectral flux, mean over bands). ``impl="fast"`` (default)
    computes it with cached filter banks and batched transforms (``onset_strength_batch``;
    within 1e-5 of the curve's maximum of librosa's at every frame); ``impl="librosa"`` calls
    librosa itself. Digital silence gives an all-zero curve with both.
    """
    if impl == "fast":
        return onset_strength_batch(np.asarray(y, dtype=np.float32), sr, hop_length, n_fft, n_mels)
    if impl == "librosa":
        return onset_strength_librosa(y, sr, hop_length, n_fft, n_mels)
    raise ValueError(f"onset-strength impl must be one of {ODF_IMPLS}, got {impl!r}")


def onset_strengths(y: np.ndarray | Sequence[np.ndarray], sr: int = ODF_SAMPLE_RATE, hop_length: int = ODF_HOP_LENGTH, n_fft: int = ODF_N_FFT, n_mels: int = ODF_N_MELS, impl: str = "fast") -> np.ndarray:
    """Curves of ``B >= 1`` equal-length clips, ``(B, n) -> (B, 1 + n // hop_length)`` float32.

    ``y``: an array ``(B, n)`` or a sequence of ``(n,)`` arrays. ``impl="fast"`` transforms the
    clips together; ``"librosa"`` loops over librosa's function.
    """
    if isinstance(y, np.ndarray) and y.ndim != 2:
        raise ValueError(f"expected waveforms of shape (B, n), got {y.shape}")
    if impl == "fast":
        return onset_strength_batch(y, sr, hop_length, n_fft, n_mels)
    if impl == "librosa":
        return np.stack([onset_strength_librosa(row, sr, hop_length, n_fft, n_mels) for row in y])
    raise ValueError(f"onset-strength impl must be one of {ODF_IMPLS}, got {impl!r}")


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


def _silent_reason(gen_silent: bool, ref_silent: bool) -> str:
    side = "generated and reference" if gen_silent and ref_silent else ("generated" if gen_silent else "reference")
    return f"{side} onset-strength curve is all zero (silent); W-dis undefined"


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
            raise UndefinedMetric(_silent_reason(gen_silent, ref_silent))
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


def wasserstein_on_grid_batch(u_weights: np.ndarray, v_weights: np.ndarray) -> np.ndarray:
    """Row-wise ``wasserstein_on_grid`` of ``(B, n)`` and ``(B, m)`` weights -> ``(B,)`` float64.

    Rows with no mass on either side give NaN (no exception: the caller decides per row).
    The same operations as the one-pair function, row by row, so the values are identical.
    """
    u = np.asarray(u_weights, dtype=np.float64)
    v = np.asarray(v_weights, dtype=np.float64)
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0]:
        raise ValueError(f"expected (B, n) and (B, m) weights, got {u.shape} and {v.shape}")
    if (u < 0).any() or (v < 0).any():
        raise ValueError("weights must be non-negative")
    n = max(u.shape[1], v.shape[1])
    u = np.pad(u, ((0, 0), (0, n - u.shape[1])))
    v = np.pad(v, ((0, 0), (0, n - v.shape[1])))
    su, sv = u.sum(axis=1, keepdims=True), v.sum(axis=1, keepdims=True)
    ok = (su[:, 0] > 0) & (sv[:, 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_gap = np.cumsum(u / su - v / sv, axis=1)
    out = np.abs(cdf_gap[:, :-1]).sum(axis=1)
    out[~ok] = np.nan
    return out


def dtw_cost_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact DTW costs of ``(B, n)`` against ``(B, m)`` sequences, row by row -> ``(B,)`` float64.

    The recurrence of ``dtw_cost`` (``D[i, j] = |a_i - b_j| + min(D[i-1, j], D[i, j-1],
    D[i-1, j-1])``) evaluated one anti-diagonal at a time for all rows at once, in numpy:
    ``n + m - 1`` vector steps, each computing its diagonal's costs from ``a`` and a reversed copy
    of ``b`` padded with inf (cells outside the matrix cost inf and never win a min). No compiled
    kernel (worker processes need not import numba), and the same float64 additions as the kernel,
    hence the same values. Memory about ``B * (2n + m + 5)`` floats (no cost matrix is stored).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError(f"dtw_cost_batch expects (B, n) and (B, m) with n, m > 0, got {a.shape} and {b.shape}")
    rows, n, m = a.shape[0], a.shape[1], b.shape[1]
    diagonals = n + m + 1
    # reversed_b[k] = b[top - k] where that indexes b, inf elsewhere: anti-diagonal d (1-based
    # i, j = d - i) reads reversed_b[top - d + 2 + (i - 1)] = b[d - i - 1] for rows i = 1..n
    top = n + m - 1
    reversed_b = np.full((top + n + 2, rows), np.inf)
    reversed_b[top - m + 1:top + 1] = b.T[::-1]
    a_t = np.ascontiguousarray(a.T)
    cost = np.empty((n, rows))
    # three arrays hold anti-diagonals d - 2, d - 1, d in turn, indexed by i; row 0 is D[0, d]
    # (inf for d > 0); no allocation per step
    ring = [np.full((n + 1, rows), np.inf) for _ in range(3)]
    ring[0][0] = 0.0  # D[0, 0]
    uppers = [r[:-1] for r in ring]  # D[i-1, .] at row i
    lefts = [r[1:] for r in ring]  # D[i, .] at row i
    for d in range(2, diagonals):
        k2, k1, k = (d - 2) % 3, (d - 1) % 3, d % 3
        if d == 3:
            ring[0][0] = np.inf  # the ring's first array now holds anti-diagonal 3
        start = top - d + 2
        np.subtract(a_t, reversed_b[start:start + n], out=cost)
        np.abs(cost, out=cost)
        best = lefts[k]
        np.minimum(uppers[k2], uppers[k1], out=best)  # D[i-1, j-1], D[i-1, j]
        np.minimum(best, lefts[k1], out=best)  # D[i, j-1]
        np.add(cost, best, out=best)
    return ring[(diagonals - 1) % 3][n].copy()


def sync_batch(
    gen: np.ndarray | Sequence[np.ndarray],
    ref: np.ndarray | Sequence[np.ndarray],
    sr: int = ODF_SAMPLE_RATE,
    hop_length: int = ODF_HOP_LENGTH,
    n_fft: int = ODF_N_FFT,
    n_mels: int = ODF_N_MELS,
    *,
    dtw: str = "exact",
    fastdtw_radius: int = 1,
    silent_policy: str = "nan",
    odf_impl: str = "fast",
) -> dict[str, list]:
    """W-dis and DTW-dis of many (generated, reference) pairs of equal-length windows.

    ``gen`` and ``ref``: ``(B, n)`` arrays or sequences of ``B`` arrays ``(n,)``: waveforms at
    ``sr`` Hz, already mixed, resampled and windowed. Returns ``{"w_dis": [...], "dtw_dis": [...]}``, one entry per pair: a float, or an
    ``UndefinedMetric`` carrying the reason (W-dis on a silent side under ``silent_policy="nan"``).
    Each value equals ``w_dis_from_odf`` / ``dtw_dis_from_odf`` on the pair's curves; the
    curves of all ``2B`` clips are computed in one batched call.
    """
    gen, ref = list(gen), list(ref)
    if len(gen) != len(ref) or len({np.shape(x) for x in gen + ref}) > 1 or (gen and np.ndim(gen[0]) != 1):
        raise ValueError("expected as many generated as reference windows, all 1-D and of one length")
    if silent_policy not in ("nan", "uniform"):
        raise ValueError(f"silent_policy must be 'nan' or 'uniform', got {silent_policy!r}")
    rows = len(gen)
    if rows == 0:
        return {"w_dis": [], "dtw_dis": []}
    odfs = onset_strengths(gen + ref, sr, hop_length, n_fft, n_mels, odf_impl)
    return sync_from_odfs(odfs[:rows], odfs[rows:], dtw=dtw, fastdtw_radius=fastdtw_radius, silent_policy=silent_policy)


def sync_from_odfs(g: np.ndarray, r: np.ndarray, *, dtw: str = "exact", fastdtw_radius: int = 1, silent_policy: str = "nan") -> dict[str, list]:
    """W-dis and DTW-dis of ``B`` pairs of onset-strength curves, ``(B, n)`` and ``(B, m)``.

    Returns ``{"w_dis": [...], "dtw_dis": [...]}`` as ``sync_batch`` does (W-dis on a silent side
    under ``silent_policy="nan"``: an ``UndefinedMetric`` with the reason); each value equals
    ``w_dis_from_odf`` / ``dtw_dis_from_odf`` on the pair's curves.
    """
    if silent_policy not in ("nan", "uniform"):
        raise ValueError(f"silent_policy must be 'nan' or 'uniform', got {silent_policy!r}")
    g, r = np.asarray(g), np.asarray(r)
    if g.ndim != 2 or r.ndim != 2 or g.shape[0] != r.shape[0]:
        raise ValueError(f"expected curves of shape (B, n) and (B, m), got {g.shape} and {r.shape}")
    rows = g.shape[0]
    if rows == 0:
        return {"w_dis": [], "dtw_dis": []}
    if dtw == "exact":
        dtw_values = list(dtw_cost_batch(g, r) / r.shape[1])
    else:
        dtw_values = [dtw_dis_from_odf(x, y, dtw, fastdtw_radius) for x, y in zip(g, r)]
    g_silent, r_silent = ~(g > 0).any(axis=1), ~(r > 0).any(axis=1)
    if silent_policy == "uniform":
        g = np.where(g_silent[:, None], 1.0, g)
        r = np.where(r_silent[:, None], 1.0, r)
    w = wasserstein_on_grid_batch(g, r)
    w_values: list = []
    for k in range(rows):
        if g_silent[k] and r_silent[k] and silent_policy == "uniform":
            w_values.append(0.0)
        elif (g_silent[k] or r_silent[k]) and silent_policy == "nan":
            w_values.append(UndefinedMetric(_silent_reason(g_silent[k], r_silent[k])))
        else:
            w_values.append(float(w[k]))
    return {"w_dis": w_values, "dtw_dis": [float(v) for v in dtw_values]}


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
