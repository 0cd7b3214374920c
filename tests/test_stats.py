"""Bootstrap intervals, paired tests and Holm's correction against SciPy and naive references.

SciPy is called here only, as the independent reference; the code under test is numpy only.
Monte-Carlo tolerances: with B resamples the 2.5% percentile of a roughly normal bootstrap
distribution has a standard error of about 0.7% of the 95% interval's width at B = 10,000 (2.2% at
B = 1,000); the tests allow several of those.
"""

from __future__ import annotations

import ast
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from tiva_bench.metrics.functional import stats
from tiva_bench.metrics.functional.distribution import frechet_distance


def _scipy_percentile_ci(data, statistic, n_resamples, seed, paired=False):
    res = sps.bootstrap(data, statistic, n_resamples=n_resamples, method="percentile", confidence_level=0.95,
                        paired=paired, vectorized=False, random_state=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


def test_stats_module_does_not_call_scipy():
    source = (Path(stats.__file__)).read_text()
    tree = ast.parse(source)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(name.startswith("scipy") for name in imported)


@pytest.mark.parametrize("dist", ["normal", "exponential", "binary"])
def test_mean_interval_matches_scipy_bootstrap(dist):
    rng = np.random.default_rng(3)
    x = {"normal": rng.normal(2.0, 1.5, 300), "exponential": rng.exponential(3.0, 150), "binary": (rng.random(120) < 0.3).astype(float)}[dist]
    low, high = stats.bootstrap_mean_interval(x, n_resamples=10_000, seed=1)
    ref_low, ref_high = sps.bootstrap((x,), np.mean, n_resamples=10_000, method="percentile", random_state=np.random.default_rng(99)).confidence_interval
    width = ref_high - ref_low
    assert abs(low - ref_low) < 0.05 * width
    assert abs(high - ref_high) < 0.05 * width
    # and against the normal-theory interval, which the bootstrap approaches for a mean
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert abs((high - low) - 2 * 1.96 * se) < 0.1 * width


def test_mean_interval_seeded_nan_dropped_and_edge_cases():
    x = np.array([1.0, 2.0, np.nan, 4.0, 8.0, 3.0])
    a = stats.bootstrap_mean_interval(x, 2000, seed=5)
    assert a == stats.bootstrap_mean_interval(x, 2000, seed=5)
    assert a == stats.bootstrap_mean_interval(x[np.isfinite(x)], 2000, seed=5)
    assert not np.array_equal(stats.bootstrap_means(x[np.isfinite(x)], 50, seed=5), stats.bootstrap_means(x[np.isfinite(x)], 50, seed=6))
    assert stats.bootstrap_mean_interval([4.0], 100) == (4.0, 4.0)
    assert all(math.isnan(v) for v in stats.bootstrap_mean_interval([np.nan, np.nan], 100))
    with pytest.raises(ValueError):
        stats.bootstrap_mean_interval(x, 100, confidence=1.5)


def test_bootstrap_means_blocking_does_not_change_draws(monkeypatch):
    x = np.random.default_rng(0).normal(size=50)
    whole = stats.bootstrap_means(x, 300, seed=2)
    idx = np.random.default_rng(2).integers(0, 50, size=(300, 50))
    naive = np.array([sum(x[i] for i in row) / 50 for row in idx])
    np.testing.assert_allclose(whole, naive)
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 120)  # blocks of 2 resamples
    np.testing.assert_allclose(stats.bootstrap_means(x, 300, seed=2), naive)


def test_metrics_sharing_draws_get_what_each_gets_alone(monkeypatch):
    """``bootstrap_mean_intervals`` draws once per sample size for all its columns (the draws depend
    only on the size and the seed); each interval equals a naive loop over that column alone."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=40), rng.exponential(size=40)
    c = rng.normal(size=41)
    c[[3, 9]] = np.nan  # 39 finite values: its own draws
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 400)  # blocks of 10 resamples: draws and means overlap in two threads

    def naive(x):
        x = x[np.isfinite(x)]
        idx = np.random.default_rng(8).integers(0, x.size, size=(500, x.size))
        means = np.array([sum(x[i] for i in row) / x.size for row in idx])
        return tuple(np.percentile(means, [2.5, 97.5]))

    got = stats.bootstrap_mean_intervals([a, b, c, np.array([np.nan])], n_resamples=500, seed=8)
    for x, interval in zip((a, b, c), got):
        np.testing.assert_allclose(interval, naive(x), rtol=1e-12)
    assert all(math.isnan(v) for v in got[3])
    assert got[0] == stats.bootstrap_mean_interval(a, 500, seed=8)


def test_set_statistic_interval_matches_scipy_paired_bootstrap():
    # a Frechet distance between small paired embedding sets, clips resampled jointly
    rng = np.random.default_rng(0)
    gen = rng.normal(0.3, 1.0, (80, 3))
    ref = gen * 0.5 + rng.normal(0, 1.0, (80, 3))
    low, high, failed = stats.bootstrap_interval(lambda idx: frechet_distance(gen[idx], ref[idx]), 80, n_resamples=1000, seed=0)
    # SciPy resamples the clip indices; the statistic looks the clips up
    ref_low, ref_high = _scipy_percentile_ci((np.arange(80),), lambda i: frechet_distance(gen[i], ref[i]), 1000, seed=7)
    width = ref_high - ref_low
    assert failed == 0
    assert abs(low - ref_low) < 0.12 * width and abs(high - ref_high) < 0.12 * width


def test_set_statistic_interval_counts_failures():
    calls = []

    def flaky(idx):
        calls.append(1)
        if len(calls) % 4 == 0:
            raise ValueError("degenerate resample")
        return float(idx.mean())

    low, high, failed = stats.bootstrap_interval(flaky, 30, n_resamples=100, seed=0)
    assert failed == 25 and low < high
    assert all(math.isnan(v) for v in stats.bootstrap_interval(lambda idx: math.nan, 5, 10)[:2])


def test_paired_bootstrap_against_scipy_and_duality():
    rng = np.random.default_rng(11)
    a = rng.normal(1.0, 1.0, 200)
    b = a - 0.15 + rng.normal(0, 0.5, 200)
    res = stats.paired_bootstrap(a, b, 10_000, seed=0)
    ref_low, ref_high = sps.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, n_resamples=10_000, method="percentile",
                                      random_state=np.random.default_rng(4)).confidence_interval
    width = ref_high - ref_low
    assert abs(res["low"] - ref_low) < 0.05 * width and abs(res["high"] - ref_high) < 0.05 * width
    assert res["mean_diff"] == pytest.approx(np.mean(a - b))
    assert (res["p_value"] < 0.05) == (res["low"] > 0 or res["high"] < 0)
    # p-value near the paired t-test's for a mean of 200 near-normal differences
    assert res["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, abs=0.01)
    same = stats.paired_bootstrap(a, a + rng.normal(0, 1e-3, 200) * 0, 1000)
    assert same["p_value"] == 1.0


@pytest.mark.parametrize("n", [5, 12, 30, 50])
def test_wilcoxon_exact_matches_scipy(n):
    rng = np.random.default_rng(n)
    a = rng.normal(0, 1, n)
    b = a + rng.normal(0.3, 1, n)
    mine = stats.wilcoxon_signed_rank(a, b, method="exact")
    ref = sps.wilcoxon(a, b, method="exact")
    assert mine["statistic"] == pytest.approx(ref.statistic)
    assert mine["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("correction", [False, True])
def test_wilcoxon_approx_with_ties_and_zeros_matches_scipy(correction):
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(0, 1, 400), 1)  # rounding makes ties and zero differences
    b = np.round(a + rng.normal(0.05, 0.3, 400), 1)
    assert np.any(a == b)
    mine = stats.wilcoxon_signed_rank(a, b, method="approx", correction=correction)
    ref = sps.wilcoxon(a, b, method="asymptotic", correction=correction)
    assert mine["statistic"] == pytest.approx(ref.statistic)
    assert mine["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert mine["n"] == int(np.sum(a != b))


def test_wilcoxon_null_counts_by_enumeration():
    n = 9
    sums = [sum(r for r, s in zip(range(1, n + 1), signs) if s) for signs in itertools.product([0, 1], repeat=n)]
    expected = np.bincount(sums, minlength=n * (n + 1) // 2 + 1)
    np.testing.assert_array_equal(stats.signed_rank_null_counts(n).astype(int), expected)


def test_wilcoxon_degenerate_inputs():
    assert stats.wilcoxon_signed_rank([1.0, 2.0], [1.0, 2.0])["p_value"] == 1.0
    assert math.isnan(stats.wilcoxon_signed_rank([np.nan], [1.0])["p_value"])
    with pytest.raises(ValueError):
        stats.wilcoxon_signed_rank([1.0, 2.0], [1.0])


def _holm_naive(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_against_naive_and_rejection_rule():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = list(rng.random(7) ** 3)
        np.testing.assert_allclose(stats.holm(p), _holm_naive(p))
        # step-down rule: reject p_(k) while p_(k) <= alpha / (m - k)
        alpha, ordered = 0.05, sorted(p)
        n_reject = next((k for k, v in enumerate(ordered) if v > alpha / (7 - k)), 7)
        assert int(np.sum(stats.holm(p) <= alpha)) == n_reject
    out = stats.holm([0.01, np.nan, 0.04])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)


def test_frechet_bootstrap_equals_recomputing_fd_on_each_resample():
    from scipy import linalg

    rng = np.random.default_rng(5)
    n, d = 40, 6
    gen = rng.normal(0.2, 1.0, (n, d))
    ref = gen @ rng.normal(0, 0.5, (d, d)) + rng.normal(0, 1.0, (n, d))

    def fd_scipy(x, y):  # the classic sqrtm form, written independently of the project's FD
        mx, my = x.mean(0), y.mean(0)
        sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        covmean = linalg.sqrtm(sx @ sy).real
        return float(((mx - my) ** 2).sum() + np.trace(sx + sy - 2 * covmean))

    fast = stats.frechet_bootstrap(gen, ref, n_resamples=60, seed=3)
    slow = stats.bootstrap_interval(lambda idx: fd_scipy(gen[idx], ref[idx]), n, n_resamples=60, seed=3)
    assert fast[2] == 0 and slow[2] == 0
    np.testing.assert_allclose(fast[:2], slow[:2], rtol=1e-6)


def test_frechet_bootstrap_with_several_rows_per_clip():
    rng = np.random.default_rng(6)
    n, e, d = 15, 3, 4
    gen, ref = rng.normal(size=(n * e, d)), rng.normal(0.5, 1.0, (n * e, d))
    clip_of_row = np.repeat(np.arange(n), e)

    def fd_rows(idx):  # materialise every example of each drawn clip, then the plain FD
        rows = np.concatenate([np.flatnonzero(clip_of_row == c) for c in idx])
        return frechet_distance(gen[rows], ref[rows])

    fast = stats.frechet_bootstrap(gen, ref, 40, seed=1, clip_of_row=clip_of_row)
    slow = stats.bootstrap_interval(fd_rows, n, 40, seed=1)
    np.testing.assert_allclose(fast[:2], slow[:2], rtol=1e-8)


# ------------------------------------------------------------ results-level annotation

from dataclasses import dataclass, field  # noqa: E402

from tiva_bench.reports import stats_summary  # noqa: E402


@dataclass
class _Inputs:  # the shape of a set metric's row-aligned inputs (like metrics.registry.SetInputs)
    gen: dict = field(default_factory=dict)
    ref: dict = field(default_factory=dict)
    labels: np.ndarray | None = None


def _fad(x):
    g, r = x.gen["embedding"], x.ref["embedding"]
    return frechet_distance(g.reshape(-1, g.shape[-1]), r.reshape(-1, r.shape[-1])), float("nan")


def _agreement(x):
    return float(np.mean(x.gen["logits"].argmax(1) == x.labels)), float("nan")


def test_set_metric_interval_fast_fad_equals_recomputing():
    rng = np.random.default_rng(2)
    for shape in ((20, 16), (6, 3, 12)):  # one embedding per clip; VGGish-like examples per clip (rows <= 1.5 d)
        inputs = _Inputs({"embedding": rng.normal(size=shape)}, {"embedding": rng.normal(0.3, 1.0, size=shape)})
        fast = stats_summary.set_metric_interval(_fad, inputs, n_resamples=50, seed=4, kind="fad")
        slow = stats_summary.set_metric_interval(_fad, inputs, n_resamples=50, seed=4)
        assert "Gram" in fast["ci"]["method"] and "Gram" not in slow["ci"]["method"]
        np.testing.assert_allclose([fast["ci_low"], fast["ci_high"]], [slow["ci_low"], slow["ci_high"]], rtol=1e-6)
        # the (fn, gen, ref, labels) call form gives the same interval
        legacy = stats_summary.set_metric_interval(lambda g, r, lab: _fad(_Inputs(g, r))[0], inputs.gen, inputs.ref, n_resamples=50, seed=4)
        assert (legacy["ci_low"], legacy["ci_high"]) == (slow["ci_low"], slow["ci_high"])
    assert stats_summary.fast_frechet_applies(np.zeros((3072, 2048))) and not stats_summary.fast_frechet_applies(np.zeros((3073, 2048)))
    assert not stats_summary.fast_frechet_applies(np.zeros((1000, 8, 128)))  # VGGish: recomputing is cheap at 128-d
    wide = stats_summary.set_metric_interval(_fad, _Inputs({"embedding": np.ones((40, 4)) + np.eye(40, 4)}, {"embedding": np.eye(40, 4)[::-1]}),
                                             n_resamples=5, kind="fad")
    assert "Gram" not in wide["ci"]["method"]


def test_set_metric_interval_resamples_labels_with_the_clips():
    rng = np.random.default_rng(8)
    n, k = 300, 4
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += np.where(rng.random(n) < 0.6, 5.0, 0.0)  # about 60-70% agreement
    out = stats_summary.set_metric_interval(_agreement, _Inputs({"logits": logits}, {"logits": logits}, labels), n_resamples=2000)
    hits = (logits.argmax(1) == labels).astype(float)
    ref = sps.bootstrap((hits,), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(out["ci_low"] - ref.low) < 0.1 * width and abs(out["ci_high"] - ref.high) < 0.1 * width
    with pytest.raises(ValueError):
        stats_summary.set_metric_interval(_agreement, _Inputs({"logits": logits}, {"logits": logits[:-1]}))


def _res(label, values, higher=False, role=None):
    out = {"label": label, "metrics": {"m": {"value": float(np.nanmean(values)), "higher_is_better": higher, "display": "M"}},
           "per_clip": [{"clip": f"c{i}", "values": {"m": None if np.isnan(v) else float(v)}} for i, v in enumerate(values)]}
    if role:
        out["role"] = role
    return out


def test_add_intervals_on_results_dicts():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 1.0, 80)
    values[5] = np.nan
    res = _res("A", values)
    out = stats_summary.add_intervals(res, n_resamples=4000, seed=0)
    assert "ci_low" not in res["metrics"]["m"]  # the input is not modified
    m = out["metrics"]["m"]
    ref = sps.bootstrap((values[np.isfinite(values)],), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(3)).confidence_interval
    width = ref.high - ref.low
    assert abs(m["ci_low"] - ref.low) < 0.06 * width and abs(m["ci_high"] - ref.high) < 0.06 * width
    assert m["ci"] == {"method": "percentile bootstrap over clips", "confidence": 0.95, "n_resamples": 4000, "seed": 0}


def test_compare_systems_marks_ties_with_the_best_and_never_ranks_references():
    rng = np.random.default_rng(1)
    base = rng.normal(5.0, 1.0, 60)
    systems = [
        _res("best", base),
        _res("close", base + rng.normal(0.02, 0.3, 60)),    # not distinguishable from the best
        _res("worse", base + 1.0 + rng.normal(0, 0.3, 60)),  # clearly worse (higher is worse here)
        _res("Ground truth", base - 3.0),                    # better than all, but a reference row
        _res("oracle", base - 2.0, role="reference"),
    ]
    out = stats_summary.compare_systems(systems, alpha=0.05)["m"]
    assert set(out) == {"best", "close", "worse"}
    assert out["best"]["best"] and out["best"]["same_as_best"]
    assert out["close"]["same_as_best"] and not out["worse"]["same_as_best"]
    close = np.array([r["values"]["m"] for r in systems[1]["per_clip"]])
    worse = np.array([r["values"]["m"] for r in systems[2]["per_clip"]])
    p_close, p_worse = sps.wilcoxon(base, close).pvalue, sps.wilcoxon(base, worse).pvalue
    assert out["close"]["p_value"] == pytest.approx(p_close, rel=1e-6)
    assert out["worse"]["p_value"] == pytest.approx(p_worse, rel=1e-6)
    # Holm with two tests: the smaller p doubles; the larger is max(its own p, the smaller's adjusted)
    holm_worse = min(1.0, 2 * p_worse) if p_worse <= p_close else max(min(1.0, 2 * p_close), p_worse)
    assert out["worse"]["p_holm"] == pytest.approx(holm_worse, rel=1e-6)
    annotated = stats_summary.annotate(systems, n_resamples=500)
    assert annotated[2]["metrics"]["m"]["vs_best"]["same_as_best"] is False
    assert "vs_best" not in annotated[3]["metrics"]["m"]
    frame = stats_summary.stats_frame(annotated)
    assert list(frame["ranked"]) == [True, True, True, False, False]
    # higher-is-better flips the best
    flipped = stats_summary.compare_systems([_res("a", base, higher=True), _res("b", base + 1.0, higher=True)])["m"]
    assert flipped["b"]["best"] and not flipped["a"]["same_as_best"]
