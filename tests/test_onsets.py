"""Onset accuracy / AP against sklearn, naive loops and constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tiva_bench.metrics.functional import UndefinedMetric
from tiva_bench.metrics.functional.onsets import average_precision, onset_metrics, onset_nms
from tests.conftest import clicks


def test_average_precision_matches_sklearn_including_ties(rng):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    for _ in range(20):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        y[0] = 1
        scores = np.round(rng.random(n), 1)  # many ties
        assert average_precision(y, scores) == pytest.approx(sklearn_metrics.average_precision_score(y, scores), rel=1e-12)


def test_average_precision_with_never_retrieved_positives(rng):
    """Extra positives that are never ranked scale recall, so AP scales by found/total."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y = np.array([1, 0, 1, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.4, 0.3])
    base = sklearn_metrics.average_precision_score(y, s)
    assert average_precision(y, s, n_positives=5) == pytest.approx(base * 3 / 5)
    assert average_precision(np.zeros(0), np.zeros(0), n_positives=4) == 0.0
    with pytest.raises(UndefinedMetric):
        average_precision(np.zeros(3), np.ones(3))


def naive_nms(onsets, conf, window):
    remaining = sorted(range(len(onsets)), key=lambda i: (conf[i], i), reverse=True)
    kept = []
    while remaining:
        i = remaining.pop(0)
        kept.append(onsets[i])
        remaining = [j for j in remaining if abs(onsets[j] - onsets[i]) >= window]
    return sorted(kept)


def test_nms_matches_naive(rng):
    for _ in range(20):
        onsets = np.sort(rng.choice(10000, size=15, replace=False))
        conf = rng.random(15)
        assert onset_nms(onsets, conf, 800).tolist() == naive_nms(onsets.tolist(), conf.tolist(), 800)


def test_identical_audio_scores_perfectly():
    y = clicks((0.5, 1.5, 3.0, 5.0), seed=4)
    acc, ap = onset_metrics(y, y, 16000)
    assert acc == 1.0 and ap == 1.0


def test_original_asymmetric_nms_penalises_a_perfect_copy():
    y = clicks((0.5, 1.5, 3.0, 5.0), seed=4)  # 3.0 s yields two raw onsets 32 ms apart
    acc, _ = onset_metrics(y, y, 16000, nms_reference=False)
    assert acc < 1.0


def test_silent_output_scores_zero_not_one():
    y = clicks((0.5, 1.5, 3.0), seed=4)
    acc, ap = onset_metrics(np.zeros_like(y), y, 16000)
    assert acc == 0.0 and ap == 0.0


def test_shift_beyond_tolerance_misses_every_onset():
    ref = clicks((0.5, 2.0, 4.0), seed=5)
    gen = clicks((1.0, 2.5, 4.5), seed=5)  # 0.5 s late, tolerance 0.1 s
    acc, ap = onset_metrics(gen, ref, 16000)
    assert acc == 0.0 and ap == 0.0


def test_no_reference_onsets_is_undefined():
    with pytest.raises(UndefinedMetric, match="no detectable onsets"):
        onset_metrics(clicks((1.0,)), np.zeros(8 * 16000, np.float32), 16000)
