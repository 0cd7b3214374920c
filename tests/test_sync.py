"""Synchronisation maths against independent references (scipy, a naive DP, closed forms)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.stats

from tiva_bench import metrics
from tiva_bench.metrics.functional import UndefinedMetric
from tiva_bench.metrics.functional.sync import (
    dtw_cost,
    dtw_cost_batch,
    dtw_dis_from_odf,
    energy_envelope,
    energy_l1_from_wav,
    fastdtw_cost,
    onset_strength,
    sync_batch,
    w_dis_from_odf,
    wasserstein_on_grid,
    wasserstein_on_grid_batch,
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
    ref = librosa.onset.onset_strength(y=y, sr=SR, hop_length=1280, n_fft=2048, n_mels=128)
    ours = onset_strength(y, SR, 1280)
    assert ours.shape == ref.shape == (101,)
    assert np.max(np.abs(ours - ref)) <= 1e-5 * ref.max()
    np.testing.assert_array_equal(onset_strength(y, SR, 1280, impl="librosa"), ref)


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
    assert metrics.w_dis(y44, ref44, 44100, odf_impl="librosa") == pytest.approx(direct, rel=1e-9)
    assert metrics.w_dis(y44, ref44, 44100) == pytest.approx(direct, rel=1e-4)


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


@pytest.mark.parametrize("n,m", [(101, 101), (30, 45), (1, 1), (12, 1)])
def test_batched_wasserstein_matches_scipy_row_by_row(rng, n, m):
    u, v = rng.random((6, n)), rng.random((6, m))
    u[2] = 0.0  # no mass: NaN for that row only
    got = wasserstein_on_grid_batch(u, v)
    assert math.isnan(got[2])
    for k in (0, 1, 3, 4, 5):
        expected = scipy.stats.wasserstein_distance(np.arange(n), np.arange(m), u[k], v[k])
        assert got[k] == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n,m", [(101, 101), (30, 45), (45, 30), (1, 1), (1, 7), (7, 1)])
def test_batched_dtw_matches_naive_dp(rng, n, m):
    a, b = rng.random((5, n)), rng.random((5, m))
    got = dtw_cost_batch(a, b)
    for k in range(5):
        assert got[k] == pytest.approx(naive_dtw(list(a[k]), list(b[k])), rel=1e-12)
    np.testing.assert_array_equal(got, [dtw_cost(x, y) for x, y in zip(a, b)])  # same additions as the kernel
    with pytest.raises(ValueError):
        dtw_cost_batch(a, b[:3])


def test_sync_batch_equals_the_pair_functions_including_silence():
    gens = [clicks((1.0, 3.0), seed=1), np.zeros(8 * SR, np.float32), clicks((2.0,), seed=2), np.zeros(8 * SR, np.float32)]
    refs = [clicks((1.2, 3.1), seed=3), clicks((4.0,), seed=4), np.zeros(8 * SR, np.float32), np.zeros(8 * SR, np.float32)]
    for policy in ("nan", "uniform"):
        got = sync_batch(np.stack(gens), np.stack(refs), silent_policy=policy)
        for k, (g, r) in enumerate(zip(gens, refs)):
            og, orf = onset_strength(g), onset_strength(r)
            assert got["dtw_dis"][k] == pytest.approx(dtw_dis_from_odf(og, orf), rel=1e-12)
            try:
                expected = w_dis_from_odf(og, orf, policy)
            except UndefinedMetric as exc:
                assert isinstance(got["w_dis"][k], UndefinedMetric) and str(got["w_dis"][k]) == str(exc)
            else:
                assert got["w_dis"][k] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    fast = sync_batch(gens[:1], refs[:1], dtw="fastdtw")
    og, orf = onset_strength(gens[0]), onset_strength(refs[0])
    assert fast["dtw_dis"][0] == pytest.approx(fastdtw_cost(og, orf) / len(orf))
    assert sync_batch([], []) == {"w_dis": [], "dtw_dis": []}


def test_fast_onset_strength_moves_w_dis_and_dtw_dis_by_at_most_1e_4_relative():
    """On procedurally rendered event clips (the benchmark's), vs librosa's own onset strength."""
    from tiva_bench.synth_audio import random_events, render_clip

    rng = np.random.default_rng(11)
    gens, refs = [], []
    for i in range(24):
        events = random_events(rng, 8.0)
        jittered = [(c, max(0.0, o + rng.normal(0, 0.15)), d, st, g) for c, o, d, st, g in events]
        refs.append(render_clip(events, 8.0, seed=i).astype(np.float32))
        gens.append(render_clip(jittered, 8.0, seed=100 + i).astype(np.float32))
    fast = sync_batch(gens, refs)
    slow = sync_batch(gens, refs, odf_impl="librosa")
    for name in ("w_dis", "dtw_dis"):
        rel = np.abs(np.subtract(fast[name], slow[name])) / np.abs(slow[name])
        assert rel.max() <= 1e-4, (name, rel.max())


@pytest.fixture
def sync_pairs(tmp_path):
    """Pairs of files: PCM-16 and float wav, a 44.1-kHz stereo clip, a short one, silence, a corrupt file."""
    import soundfile as sf

    librosa = pytest.importorskip("librosa")
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    pairs = []
    for i in range(9):
        key = f"c{i}"
        g, r = clicks((1.0 + 0.3 * i, 4.0), seed=i), clicks((1.1 + 0.3 * i, 4.2), seed=50 + i)
        if i == 3:  # 44.1 kHz stereo generated clip
            g44 = librosa.resample(g, orig_sr=SR, target_sr=44100)
            sf.write(gen / f"{key}.wav", np.stack([g44, 0.5 * g44], axis=1), 44100, subtype="FLOAT")
        elif i == 4:  # 2-s generated clip: zero-padded to the window
            sf.write(gen / f"{key}.wav", g[: 2 * SR], SR, subtype="PCM_16")
        elif i == 5:
            sf.write(gen / f"{key}.wav", np.zeros(8 * SR, np.float32), SR, subtype="PCM_16")
        elif i == 6:
            (gen / f"{key}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        else:
            sf.write(gen / f"{key}.wav", g, SR, subtype="PCM_16" if i % 2 else "FLOAT")
        sf.write(ref / f"{key}.wav", r, SR, subtype="PCM_16")
        pairs.append((key, gen / f"{key}.wav", ref / f"{key}.wav"))
    return pairs


def _librosa_reference(gen_path, ref_path):
    """W-dis and DTW-dis the plain way: librosa.load (soxr HQ, mono), first 8 s, librosa ODF, scipy, naive DP."""
    import librosa

    odfs = []
    for path in (gen_path, ref_path):
        y, _ = librosa.load(path, sr=SR, mono=True, res_type="soxr_hq")
        y = np.pad(y[: 8 * SR], (0, max(0, 8 * SR - y.size)))
        odfs.append(librosa.onset.onset_strength(y=y, sr=SR, hop_length=1280))
    g, r = odfs
    w = scipy.stats.wasserstein_distance(np.arange(len(g)), np.arange(len(r)), g, r) if g.any() and r.any() else math.nan
    return w, naive_dtw(list(g.astype(np.float64)), list(r.astype(np.float64))) / len(r)


def test_score_sync_chunk_matches_the_plain_librosa_pipeline(sync_pairs):
    from tiva_bench.config import ScoreConfig
    from tiva_bench.metrics.sync import score_sync_chunk

    out = score_sync_chunk(sync_pairs, ScoreConfig(metrics=["w_dis", "dtw_dis"]))
    assert [o.clip if hasattr(o, "clip") else o["clip"] for o in out] == [k for k, _, _ in sync_pairs]
    for (key, g, r), result in zip(sync_pairs, out):
        if key == "c6":
            assert isinstance(result, dict) and result["reason"].startswith("generated file")
            continue
        w, d = _librosa_reference(g, r)
        assert result.values["dtw_dis"] == pytest.approx(d, rel=1e-4)
        if math.isnan(w):
            assert math.isnan(result.values["w_dis"]) and "silent" in result.undefined["w_dis"]
        else:
            assert result.values["w_dis"] == pytest.approx(w, rel=1e-4)
    assert out[3].gen_sr == 44100 and out[4].gen_padded_s == pytest.approx(6.0) and out[5].gen_silent


def test_batched_sync_path_in_workers_equals_one_process(sync_pairs):
    """The runner's sync-only path (chunks of pairs in worker processes) gives the per-pair path's values."""
    from tiva_bench.config import ScoreConfig
    from tiva_bench.pairing import Pair
    from tiva_bench.runner import iter_clip_outcomes
    from tiva_bench.metrics.registry import resolve_metrics

    pairs = [Pair(f"{key}-{k}", g, r) for k in range(3) for key, g, r in sync_pairs]
    outcomes = {}
    for workers, names in ((1, ["w_dis", "dtw_dis"]), (2, ["w_dis", "dtw_dis"]), (1, ["w_dis", "dtw_dis", "energy_l1"])):
        cfg = ScoreConfig(metrics=names, workers=workers)
        out = [o for _, o in iter_clip_outcomes(pairs, cfg, resolve_metrics(names))]
        outcomes[(workers, len(names))] = [
            (o.skipped["clip"], o.skipped["reason"]) if o.result is None else (o.result.clip, {k: o.result.values[k] for k in ("w_dis", "dtw_dis")})
            for o in out]
    assert len(outcomes[(1, 2)]) == len(pairs)
    assert repr(outcomes[(2, 2)]) == repr(outcomes[(1, 2)])
    assert repr(outcomes[(1, 3)]) == repr(outcomes[(1, 2)]), "the batched and the per-pair paths agree"


def test_sync_scoring_imports_no_librosa_numba_or_torch(sync_pairs, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    key, g, r = sync_pairs[0]
    code = (
        "import sys\n"
        "from tiva_bench.config import ScoreConfig\n"
        "from tiva_bench.metrics.sync import score_sync_chunk\n"
        f"out = score_sync_chunk([({key!r}, {str(g)!r}, {str(r)!r})], ScoreConfig())\n"
        "assert out[0].values['w_dis'] > 0\n"
        "print(sorted(m for m in ('librosa', 'numba', 'torch', 'av') if m in sys.modules))\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_sync_chunks_cover_the_pairs_in_order_big_first_small_last():
    from tiva_bench.runner import SYNC_CHUNK, SYNC_CHUNK_MIN, sync_chunks

    for n, workers in ((0, 2), (3, 1), (20, 2), (1000, 2), (1001, 8)):
        chunks = sync_chunks(list(range(n)), workers)
        assert [x for c in chunks for x in c] == list(range(n))
        sizes = [len(c) for c in chunks]
        assert all(1 <= k <= SYNC_CHUNK for k in sizes) and sizes == sorted(sizes, reverse=True)
        assert all(k >= SYNC_CHUNK_MIN for k in sizes[:-1])
    sizes = [len(c) for c in sync_chunks(list(range(1000)), 2)]
    assert sizes[0] == SYNC_CHUNK and sizes[-1] == SYNC_CHUNK_MIN and len(sizes) < 1000 / 16


def test_pcm16_clips_skip_the_float_conversion_with_identical_outcomes(sync_pairs, tmp_path, monkeypatch):
    """Mono 16-bit WAVs at 16 kHz and at least a window long are scored from their integers
    (``Pcm16Window``): every outcome (values, reasons, rates, padding, silence) equals the one from
    the float clips, on PCM-16, float, stereo, 44.1-kHz, short, silent and corrupt files, plus a
    long clip, a stereo PCM-16 one, a 22.05-kHz one and a truncated one."""
    import soundfile as sf

    from tiva_bench.config import ScoreConfig
    from tiva_bench.metrics import sync

    extra = tmp_path / "extra"
    extra.mkdir()
    pairs = list(sync_pairs)
    ref = sync_pairs[0][2]
    long_clip = clicks((0.5, 3.0, 9.5), duration_s=11.0, seed=7)
    sf.write(extra / "long.wav", long_clip, SR, subtype="PCM_16")
    sf.write(extra / "stereo.wav", np.stack([long_clip, -long_clip], axis=1), SR, subtype="PCM_16")
    sf.write(extra / "rate22.wav", clicks((1.0, 5.0), sr=22050, seed=8), 22050, subtype="PCM_16")
    sf.write(extra / "cut.wav", long_clip, SR, subtype="PCM_16")
    (extra / "cut.wav").write_bytes((extra / "cut.wav").read_bytes()[:-4001])
    for name in ("long", "stereo", "rate22", "cut"):
        pairs.append((name, extra / f"{name}.wav", ref))
    cfg = ScoreConfig(metrics=["w_dis", "dtw_dis"])
    odd = replace(cfg, audio=replace(cfg.audio, window_s=8.00003))  # 128,000.48 samples: the window rounds down

    used = []
    load = sync.Pcm16Window.load.__func__

    def counted(cls, path, audio_cfg, sr):
        window = load(cls, path, audio_cfg, sr)
        used.append((f"{path.parent.name}/{path.name}", window is not None))
        return window

    monkeypatch.setattr(sync.Pcm16Window, "load", classmethod(counted))
    fast = sync.score_sync_chunk(pairs, cfg) + sync.score_sync_chunk(pairs[:3], odd)
    monkeypatch.setattr(sync.Pcm16Window, "load", classmethod(lambda cls, *args: None))
    generic = sync.score_sync_chunk(pairs, cfg) + sync.score_sync_chunk(pairs[:3], odd)
    assert fast[-2].gen_padded_s == pytest.approx(3e-5)  # c1: exactly 8 s long
    assert len(fast) == len(generic) == len(pairs) + 3
    for a, b in zip(fast, generic):
        assert (a if isinstance(a, dict) else vars(a)) == (b if isinstance(b, dict) else vars(b))
    from_integers = {name for name, ok in used if ok}
    assert {"extra/long.wav", "gen/c1.wav", "gen/c5.wav", "ref/c0.wav"} <= from_integers  # c5: silence
    assert not from_integers & {"extra/stereo.wav", "extra/rate22.wav", "extra/cut.wav", "gen/c0.wav", "gen/c3.wav", "gen/c4.wav", "gen/c6.wav"}
    assert isinstance(fast[len(pairs) - 1], dict) and "damaged" in fast[len(pairs) - 1]["reason"]
