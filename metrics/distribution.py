"""Thin stateful classes over the distribution maths (feed them batches of features/logits)."""

from __future__ import annotations

import numpy as np

from tiva_bench.metrics.functional.distribution import (
    GaussianStats,
    frechet_distance_from_stats,
    inception_score,
    kl_divergence,
    kl_divergence_sigmoid,
)
from tiva_bench.metrics.functional.similarity import cosine_similarity_score


class FrechetDistance:
    """FAD-style Frechet distance with streaming float64 statistics.

    ``update(gen=..., ref=...)`` with arrays of shape ``(n, d)``; ``compute()`` -> float.
    Reference statistics can be reused across runs: ``FrechetDistance(ref_stats=stats)``.
    """

    higher_is_better = False

    def __init__(self, ref_stats: GaussianStats | None = None):
        self._fixed_ref = ref_stats
        self.reset()

    def reset(self) -> None:
        self.gen = GaussianStats()
        self.ref = self._fixed_ref if self._fixed_ref is not None else GaussianStats()

    def update(self, gen: np.ndarray | None = None, ref: np.ndarray | None = None) -> None:
        if gen is not None:
            self.gen.update(gen)
        if ref is not None:
            if self._fixed_ref is not None:
                raise ValueError("reference statistics are fixed for this metric")
            self.ref.update(ref)

    def compute(self) -> float:
        return frechet_distance_from_stats(self.gen.mean, self.gen.cov, self.ref.mean, self.ref.cov)


class _Paired:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._ref: list[np.ndarray] = []
        self._gen: list[np.ndarray] = []

    def update(self, ref_logits: np.ndarray, gen_logits: np.ndarray) -> None:
        ref, gen = np.atleast_2d(ref_logits), np.atleast_2d(gen_logits)
        if ref.shape != gen.shape:
            raise ValueError(f"paired inputs must have one shape, got {ref.shape} and {gen.shape}")
        self._ref.append(ref)
        self._gen.append(gen)

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self._ref), np.concatenate(self._gen)


class KLDivergence(_Paired):
    """Mean paired KL(softmax(ref) || softmax(gen)); ``sigmoid=True`` for the multi-label term."""

    higher_is_better = False

    def __init__(self, sigmoid: bool = False):
        self.sigmoid = sigmoid
        super().__init__()

    def compute(self) -> float:
        ref, gen = self._stacked()
        return (kl_divergence_sigmoid if self.sigmoid else kl_divergence)(ref, gen)


class InceptionScore:
    """Inception Score over accumulated logits: ``compute()`` -> ``(mean, std)``."""

    higher_is_better = True

    def __init__(self, splits: int = 10, seed: int = 0):
        self.splits, self.seed = splits, seed
        self.reset()

    def reset(self) -> None:
        self._logits: list[np.ndarray] = []

    def update(self, logits: np.ndarray) -> None:
        self._logits.append(np.atleast_2d(logits))

    def compute(self) -> tuple[float, float]:
        return inception_score(np.concatenate(self._logits), self.splits, self.seed)


class CosineSimilarity(_Paired):
    """Mean paired cosine similarity (e.g. ImageBind video vs generated audio)."""

    higher_is_better = True

    def compute(self) -> float:
        a, b = self._stacked()
        return cosine_similarity_score(a, b)
