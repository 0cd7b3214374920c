"""Signal helpers shared by the I/O layer and the public metric functions (no file I/O)."""

from __future__ import annotations

import math

import numpy as np


def resample(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono signal with soxr HQ, length fixed to ``ceil(n * target_sr / orig_sr)``.

    Matches ``librosa.resample(y, orig_sr=..., target_sr=..., res_type="soxr_hq")``; the input's
    dtype is kept; identical rates return the input unchanged.
    """
    if orig_sr == target_sr:
        return samples
    import soxr

    n_out = int(math.ceil(samples.shape[-1] * float(target_sr) / orig_sr))
    out = soxr.resample(samples, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] > n_out:
        out = out[:n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return np.asarray(out, dtype=samples.dtype)


def crop_or_pad(samples: np.ndarray, sr: int, window_s: float) -> tuple[np.ndarray, float]:
    """The first ``window_s`` seconds (``round(window_s * sr)`` samples), zero-padded if short.

    Returns ``(window, padded_seconds)``. ``window_s <= 0`` returns the signal unchanged.
    """
    if window_s <= 0:
        return samples, 0.0
    n = int(round(window_s * sr))
    if samples.shape[-1] >= n:
        return samples[:n], 0.0
    pad = n - samples.shape[-1]
    return np.pad(samples, (0, pad)), pad / sr
