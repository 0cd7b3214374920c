"""Warm-up calls for every numba-compiled function the clip metrics use, with every dtype they see.

``tiva_bench.core.jit_cache.ensure_ready(JIT_TARGETS)`` calls these under a lock on numba's cache
folder before any scoring process uses the functions, so no two processes ever compile or write
the same cache entry at once (see docs/PROTOCOL.md, "Compiled code and its cache").
"""

from __future__ import annotations

import numpy as np

from tiva_bench.metrics.functional.onsets import detect_onsets
from tiva_bench.metrics.functional.sync import dtw_cost

JIT_TARGETS = ("tiva_bench.metrics.functional.jit_warmup:warm_clip_metrics",)


def warm_clip_metrics() -> None:
    """Compile (or load from the cache) librosa's onset strength / peak picking and the exact DTW."""
    import librosa

    rng = np.random.default_rng(0)
    burst = np.zeros(16000, dtype=np.float64)
    burst[4000:4400] = rng.standard_normal(400)
    burst[11000:11400] = rng.standard_normal(400)
    for dtype in (np.float32, np.float64):
        y = burst.astype(dtype)
        odf = librosa.onset.onset_strength(y=y, sr=16000, hop_length=160)
        librosa.util.peak_pick(odf.astype(dtype), pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.1, wait=1)
        detect_onsets(y, 16000)
    dtw_cost(rng.random(7), rng.random(5))
