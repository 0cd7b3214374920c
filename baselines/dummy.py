"""Sanity baselines made from the references themselves (no model).

They bracket every metric: ``ground_truth`` is the best any system can do, ``shuffled`` (another
clip's reference) is chance level for synchronisation, ``shifted`` moves every sound later by a
fixed lag, ``noise`` and ``silence`` are degenerate outputs.
"""

from __future__ import annotations

import numpy as np


def ground_truth(ref: np.ndarray, **_) -> np.ndarray:
    return ref.copy()


def shifted(ref: np.ndarray, sr: int, lag_s: float = 0.5, **_) -> np.ndarray:
    """The reference delayed by ``lag_s`` seconds (zeros in front, same length)."""
    k = int(round(lag_s * sr))
    return np.concatenate([np.zeros(k, dtype=ref.dtype), ref[: max(0, ref.size - k)]])


def shuffled(refs: list[np.ndarray], index: int, **_) -> np.ndarray:
    """The next clip's reference (a derangement: never the clip's own audio)."""
    return refs[(index + 1) % len(refs)].copy()


def noise(ref: np.ndarray, seed: int = 0, **_) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(ref.size) * 0.1).astype(np.float32)


def silence(ref: np.ndarray, **_) -> np.ndarray:
    return np.zeros_like(ref)
