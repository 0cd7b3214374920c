"""Set-level distribution maths: Frechet distance, KL divergence, Inception Score.

All accumulate in float64. None returns a sentinel: undefined values raise ``UndefinedMetric``
(or ``ValueError`` for malformed input) with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric


class FewSamplesWarning(UserWarning):
    """Fewer samples than embedding dimensions: the covariance is rank-deficient and FD biased."""


def _as_2d_finite(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must have shape (n, d), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} holds NaN/Inf values")
    return x


@dataclass
class GaussianStats:
    """Streaming mean and covariance of d-dim vectors (Chan et al. merge, float64).

    ``update(x)`` with ``x`` of shape ``(n, d)``; batch order and batch sizes do not change the
    result beyond float64 rounding. ``cov`` is the unbiased covariance (divides by ``n - 1``).
    """

    dim: int | None = None
    n: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = field(default=None, repr=False)

    def update(self, x: np.ndarray) -> "GaussianStats":
        x = _as_2d_finite(x, "features")
        if x.shape[0] == 0:
            return self
        if self.dim is None:
            self.dim = x.shape[1]
            self.mean = np.zeros(self.dim)
            self.m2 = np.zeros((self.dim, self.dim))
        elif x.shape[1] != self.dim:
            raise ValueError(f"feature size changed from {self.dim} to {x.shape[1]}")
        nb = x.shape[0]
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        total = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2_b + np.outer(delta, delta) * (self.n * nb / total)
        self.n = total
        return self

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise UndefinedMetric(f"covariance needs at least 2 samples, got {self.n}")
        return self.m2 / (self.n - 1)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr sqrt(sigma1 @ sigma2)`` for symmetric PSD matrices.

    Uses ``Tr sqrt(S1 S2) = Tr sqrt(S1^(1/2) S2 S1^(1/2))``: the inner matrix is symmetric PSD,
    so its eigenvalues are real and clipped at 0 -- no complex parts, no ``sqrtm`` quirks.
    """
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2)`` (>= 0 up to rounding)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of vectors, shapes ``(n_a, d)``, ``(n_b, d)``.

    Warns (``FewSamplesWarning``) when a set has fewer samples than dimensions; raises
    ``UndefinedMetric`` with fewer than 2 samples in a set.
    """
    a, b = _as_2d_finite(a, "first set"), _as_2d_finite(b, "second set")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}")
    for name, x in (("first", a), ("second", b)):
        if x.shape[0] < x.shape[1]:
            warnings.warn(
                f"{name} set has {x.shape[0]} samples for {x.shape[1]} dimensions; FD is biased",
                FewSamplesWarning,
                stacklevel=2,
            )
    sa, sb = GaussianStats().update(a), GaussianStats().update(b)
    return frechet_distance_from_stats(sa.mean, sa.cov, sb.mean, sb.cov)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def kl_divergence(ref_logits: np.ndarray, gen_logits: np.ndarray, eps: float = 0.0) -> float:
    """Mean over pairs of ``KL(softmax(ref_i) || softmax(gen_i))`` in nats.

    Rows are paired (clip i of the reference with clip i of the generated set); shapes ``(n, C)``.
    The SpecVQGAN / av-benchmark convention for single-label classifiers. ``eps``: those toolkits
    take ``log(softmax(gen) + 1e-6)``; pass ``eps=1e-6`` to reproduce their values exactly (the
    default 0 is the exact divergence).
    """
    ref = _as_2d_finite(ref_logits, "reference logits")
    gen = _as_2d_finite(gen_logits, "generated logits")
    if ref.shape != gen.shape:
        raise ValueError(f"logit shapes differ: {ref.shape} vs {gen.shape}")
    if ref.shape[0] == 0:
        raise UndefinedMetric("no pairs")
    log_p, log_q = _log_softmax(ref), _log_softmax(gen)
    if eps:
        log_q = np.log(np.exp(log_q) + eps)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def kl_divergence_sigmoid(ref_logits: np.ndarray, gen_logits: np.ndarray) -> float:
    """Multi-label variant: mean over pairs of ``sum_c s(r_c) (log s(r_c) - log s(g_c))``, s = sigmoid.

    This is the positive-class term used by AudioLDM-style evaluation for multi-label taggers
    (PaSST, PANNs); it is not a full Bernoulli KL. Use only to reproduce numbers made that way.
    """
    ref = _as_2d_finite(ref_logits, "reference logits")
    gen = _as_2d_finite(gen_logits, "generated logits")
    if ref.shape != gen.shape:
        raise ValueError(f"logit shapes differ: {ref.shape} vs {gen.shape}")
    if ref.shape[0] == 0:
        raise UndefinedMetric("no pairs")
    log_p, log_q = _log_sigmoid(ref), _log_sigmoid(gen)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=1)))


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = 0, shuffle: str = "default_rng") -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` parts: ``(mean, std)``.

    ``logits`` shape ``(n, C)``; rows are shuffled with ``numpy.random.default_rng(seed)``, cut
    into ``splits`` near-equal parts (``numpy.array_split``), and ``p(y)`` is the mean within a
    part. The std is the population std (ddof 0) over parts. Raises ``UndefinedMetric`` when
    there are fewer rows than splits. ``shuffle="torch-fidelity"`` shuffles and cuts as
    torch-fidelity, SpecVQGAN and av-benchmark do (``numpy.random.RandomState(seed)``, part ``i``
    = rows ``i*n//splits`` to ``(i+1)*n//splits``; they use seed 2020), reproducing their values.
    """
    x = _as_2d_finite(logits, "logits")
    if splits < 1:
        raise ValueError("splits must be >= 1")
    if x.shape[0] < splits:
        raise UndefinedMetric(f"{x.shape[0]} samples for {splits} splits")
    n = x.shape[0]
    if shuffle == "torch-fidelity":
        log_p = _log_softmax(x)[np.random.RandomState(seed).permutation(n)]
        parts = [log_p[i * n // splits:(i + 1) * n // splits] for i in range(splits)]
    elif shuffle == "default_rng":
        parts = np.array_split(_log_softmax(x)[np.random.default_rng(seed).permutation(n)], splits)
    else:
        raise ValueError(f"shuffle must be 'default_rng' or 'torch-fidelity', not {shuffle!r}")
    scores = []
    for part in parts:
        p = np.exp(part)
        log_py = np.log(p.mean(axis=0) + 1e-300)
        scores.append(np.exp(np.mean(np.sum(p * (part - log_py), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
