"""Embedding similarity scores."""

from __future__ import annotations

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric


def cosine_similarity_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of ``cos(a_i, b_i)``, shapes ``(n, d)``; in [-1, 1] (tables show x100).

    Raises ``UndefinedMetric`` if a row has zero norm.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (n, d) arrays of one shape, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise UndefinedMetric("no pairs")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise UndefinedMetric("an embedding has zero norm")
    return float(np.mean(np.sum(a * b, axis=1) / (na * nb)))
