"""Synchronisation maths against independent references (scipy, a naive DP, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from tiva_bench import metrics
from tiva_bench.metrics.functional import UndefinedMetric
from tiva_bench.metrics.functional.sync import (
    dtw_cost,
    dtw_dis_from_odf,
    energy_envelope,
    energy_l1_from_wav,
    fastdtw_cost,
    onset_strength,
    w_dis_from_odf,
    wasserstein_on_grid,
)
from tests.conftest import SR, clicks


def naive_dtw(a, b):
    """Full-matrix DTW with |a-b| cost, written as plainly as possible."""
    n, m = len(a), len(b)
    D = [[math.inf] * (m + 1) for _ in range(n + 1)]
    D[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i][j] = abs(a[i - 1] - b[j - 1]) + min(D[i - 1][j], D[i][j - 1], D[i - 1][j - 1])
    return D[n][m]


@pytest.mark.parametrize("n,m", [(101, 101), (50, 73), (1, 9), (7, 1)])
def test_wasserstein_matches_scipy(rng, n, m):
    u, v = rng.random(n), rng.random(m)
    expected = scipy.stats.wasserstein_distance(np.arange(n), np.arange(m), u, v)
    assert wasserstein_on_grid(u, v) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_wasserstein_of_a_pure_shift_is_the_shift():
    u = np.zeros(100)
    v = np.zeros(100)
    u[10], v[37] = 3.0, 0.5  # masses differ: weights are normalised
    assert wasserstein_on_grid(u, v) == pytest.approx(27.0)


def test_w_dis_silent_policy():
    odf = np.r_[np.zeros(50), 1.0, np.zeros(50)]
    with pytest.raises(UndefinedMetric, match="generated"):
        w_dis_from_odf(np.zeros(101), odf, "nan")
    with pytest.raises(UndefinedMetric, match="reference"):
        w_dis_from_odf(odf, np.zeros(101), "nan")
    # uniform policy: closed form E|U - 50| for U uniform on 0..100
    expected = np.mean(np.abs(np.arange(101) - 50))
    assert w_dis_from_odf(np.zeros(101), odf, "uniform") == pytest.approx(expected)
    assert w_dis_from_odf(np.zeros(101), np.zeros(101), "uniform") == 0.0


@pytest.mark.parametrize("n,m", [(101, 101), (30, 45), (1, 1), (12, 1)])
def test_dtw_matches_naive_dp(rng, n, m):
    a, b = rng.random(n), rng.random(m)
    assert dtw_cost(a, b) == pytest.approx(naive_dtw(a, b), rel=1e-12)


def test_dtw_identity_and_fastdtw_upper_bound(rng):
    a = rng.random(101)
    assert dtw_cost(a, a) == 0.0
    for _ in range(5):
        x, y = rng.random(101), rng.random(101)
        assert fastdtw_cost(x, y, radius=1) >= dtw_cost(x, y) - 1e-9


def test_dtw_dis_divides_by_reference_frames(rng):
    a, b = rng.random(40), rng.random(50)
    assert dtw_dis_from_odf(a, b) == pytest.approx(naive_dtw(a, b) / 50)


def test_onset_strength_is_librosa_with_tiva_parameters():
    librosa = pytest.importorskip("librosa")
    y = clicks((1.0, 2.5))
    ours = onset_strength(y, SR, 1280)
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=1280, n_fft=2048, n_mels=128)
    assert ours.shape == (1 + y.size // 1280,) == (101,)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=0)


def test_w_dis_of_shifted_click_is_the_shift_in_frames():
    gen, ref = clicks((2.0,), seed=1), clicks((2.5,), seed=1)
    # 0.5 s at 80-ms frames = 6.25 frames; ODF peaks fall on whole frames
    assert metrics.w_dis(gen, ref, SR) == pytest.approx(6.25, abs=0.8)
    assert metrics.w_dis(ref, ref, SR) == 0.0
    assert metrics.dtw_dis(ref, ref, SR) == 0.0


def test_w_dis_resamples_other_rates_like_librosa():
    librosa = pytest.importorskip("librosa")
    y16 = clicks((1.0, 3.0), seed=2)
    y44 = librosa.resample(y16, orig_sr=SR, target_sr=44100)
    ref = clicks((1.2, 3.3), seed=3)
    ref44 = librosa.resample(ref, orig_sr=SR, target_sr=44100)
    direct = scipy.stats.wasserstein_distance(
        np.arange(101), np.arange(101),
        librosa.onset.onset_strength(y=librosa.resample(y44, orig_sr=44100, target_sr=SR)[: 8 * SR], sr=SR, hop_length=1280),
        librosa.onset.onset_strength(y=librosa.resample(ref44, orig_sr=44100, target_sr=SR)[: 8 * SR], sr=SR, hop_length=1280),
    )
    assert metrics.w_dis(y44, ref44, 44100) == pytest.approx(direct, rel=1e-9)


def test_w_dis_on_silence_is_nan_with_a_warning():
    with pytest.warns(metrics.UndefinedMetricWarning, match="silent"):
        value = metrics.w_dis(np.zeros(8 * SR, np.float32), clicks((1.0,)), SR)
    assert math.isnan(value)
    # DTW-dis stays defined: it costs the reference's ODF mass
    assert metrics.dtw_dis(np.zeros(8 * SR, np.float32), clicks((1.0,)), SR) > 0


def test_energy_envelope_matches_librosa_rms():
    librosa = pytest.importorskip("librosa")
    y = clicks((0.5, 1.7), duration_s=3.0).astype(np.float64)
    ref = librosa.feature.rms(y=y, frame_length=2048, hop_length=1280, center=True, pad_mode="constant")[0]
    np.testing.assert_allclose(energy_envelope(y, 2048, 1280), ref, rtol=1e-6, atol=1e-9)


def test_energy_l1_closed_form_and_scale_invariance():
    y = clicks((1.0, 4.0))
    assert energy_l1_from_wav(y, 0.3 * y) == pytest.approx(0.0, abs=1e-9)  # float32 rounding of 0.3*y
    # constant signals: both normalised envelopes are 1 everywhere except the half-padded ends
    a = np.ones(16000)
    b = np.zeros(16000)
    b[:8000] = 1.0
    ea, eb = energy_envelope(a), energy_envelope(b)
    expected = np.mean(np.abs(ea / ea.max() - eb / eb.max()))
    assert energy_l1_from_wav(a, b) == pytest.approx(expected)
    with pytest.raises(UndefinedMetric):
        energy_l1_from_wav(np.zeros(16000), a)


def test_stateful_classes_average_defined_clips():
    m = metrics.WDis()
    m.update(clicks((1.0,)), clicks((1.0,)))
    m.update(np.zeros(8 * SR, np.float32), clicks((1.0,)))
    m.update(clicks((2.0,), seed=1), clicks((2.5,), seed=1))
    assert m.n_undefined == 1
    assert m.compute() == pytest.approx(np.nanmean(m.values))
