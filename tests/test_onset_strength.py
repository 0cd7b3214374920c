"""The batched onset strength against librosa itself: varied signals, rates, lengths, settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal

from tiva_bench.metrics.functional.onset_strength import hann_window, mel_bank_bands, mel_filter_bank, onset_strength_batch
from tiva_bench.metrics.functional.sync import onset_strength, onset_strengths
from tests.conftest import clicks

librosa = pytest.importorskip("librosa")

try:
    import mkl_fft  # noqa: F401  (a dependency on Linux x86-64)
    HAVE_MKL = True
except ImportError:
    HAVE_MKL = False


@pytest.fixture(params=["numpy", "mkl"])
def fft_backend(request, monkeypatch):
    """The tests that compute curves run with each FFT library the onset strength can use."""
    if request.param == "mkl" and not HAVE_MKL:
        pytest.skip("mkl_fft is not installed here (a dependency on Linux x86-64 only)")
    monkeypatch.setenv("TIVA_BENCH_FFT", request.param)
    from tiva_bench.metrics.functional.onset_strength import fft_backend as active
    assert active() == request.param
    return request.param


@pytest.mark.skipif(not HAVE_MKL, reason="mkl_fft is not installed here (a dependency on Linux x86-64 only)")
def test_the_two_fft_libraries_agree(monkeypatch):
    """MKL's and numpy's float64 transforms give the same curves to float32 rounding (independent
    FFT implementations; both are also checked against librosa in the tests below)."""
    y = signals(16000, 8.0, seed=3)
    curves = {}
    for backend in ("numpy", "mkl"):
        monkeypatch.setenv("TIVA_BENCH_FFT", backend)
        curves[backend] = {k: onset_strength(v, 16000, 1280, 2048, 128) for k, v in y.items()}
    for k in y:
        a, b = curves["numpy"][k], curves["mkl"][k]
        assert np.max(np.abs(a - b)) <= 1e-6 * max(float(np.max(np.abs(a))), 1e-12), k


def test_unknown_fft_library_is_refused(monkeypatch):
    monkeypatch.setenv("TIVA_BENCH_FFT", "fftw")
    with pytest.raises(ValueError, match="TIVA_BENCH_FFT must be one of auto, mkl, numpy"):
        onset_strength(np.ones(4000, np.float32), 16000, 1280, 2048, 128)


# (sr, hop_length, n_fft, n_mels): the protocol's settings first, then librosa's defaults and others
SETTINGS = [(16000, 1280, 2048, 128), (16000, 512, 2048, 128), (22050, 256, 1024, 80), (8000, 160, 512, 40), (44100, 4096, 2048, 128)]


def signals(sr: int, duration_s: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Test signals of ``duration_s`` seconds at ``sr`` Hz, float32."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t) * (t > duration_s / 3)  # a tone that starts mid-clip
    two_tones = 0.3 * np.sin(2 * np.pi * 1000.0 * t) + 0.01 * np.sin(2 * np.pi * 3000.0 * t) * (t % 1.0 < 0.5)
    chirp = 0.4 * scipy.signal.chirp(t, f0=50.0, t1=max(duration_s, 1e-3), f1=0.45 * sr, method="logarithmic")
    noise = 0.1 * rng.standard_normal(n)
    quiet_bursts = 1e-4 * rng.standard_normal(n) * ((t % 0.7) < 0.05)  # near the 80-dB floor
    out = {
        "clicks": clicks(np.arange(0.3, duration_s, 0.9), duration_s=duration_s, sr=sr, seed=seed),
        "tone": tone, "two_tones": two_tones, "chirp": chirp, "noise": noise, "quiet_bursts": quiet_bursts,
        "silence": np.zeros(n), "dc": np.full(n, 0.25),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def librosa_odf(y, sr, hop, n_fft, n_mels):
    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=n_fft, n_mels=n_mels)


def assert_close_to_librosa(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    assert ours.dtype == np.float32
    bound = 1e-5 * float(ref.max()) if ref.size else 0.0
    err = float(np.max(np.abs(ours.astype(np.float64) - ref))) if ref.size else 0.0
    assert err <= bound, f"{what}: max |ours - librosa| = {err:.3g} > 1e-5 x max = {bound:.3g}"


@pytest.mark.parametrize("sr,hop,n_fft,n_mels", SETTINGS)
def test_matches_librosa_on_varied_signals(sr, hop, n_fft, n_mels, fft_backend):
    sigs = signals(sr, 3.0)
    names = list(sigs)
    batch = onset_strength_batch(np.stack([sigs[k] for k in names]), sr, hop, n_fft, n_mels)
    for row, name in zip(batch, names):
        assert_close_to_librosa(row, librosa_odf(sigs[name], sr, hop, n_fft, n_mels), f"{name} at {sr} Hz, hop {hop}")


@pytest.mark.parametrize("sr,hop,n_fft,n_mels", SETTINGS)
@pytest.mark.parametrize("duration_s", [0.1, 1.0])
def test_matches_librosa_on_short_and_near_flat_curves(sr, hop, n_fft, n_mels, duration_s, fft_backend):
    """Short clips and stationary signals (DC, tones, noise) give curves whose maximum is tiny
    (float32 noise of librosa's own arithmetic): the bound holds there too."""
    sigs = signals(sr, duration_s, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: "n_fft=... is too large for input signal"
        for name, y in sigs.items():
            assert_close_to_librosa(onset_strength_batch(y, sr, hop, n_fft, n_mels), librosa_odf(y, sr, hop, n_fft, n_mels), f"{name}, {duration_s} s at {sr} Hz, hop {hop}")


def test_protocol_window_8s_and_silence_is_exactly_zero(fft_backend):
    sigs = signals(16000, 8.0, seed=3)
    for name, y in sigs.items():
        ours = onset_strength(y)  # protocol defaults: 16 kHz, hop 1280, n_fft 2048, 128 mels
        assert ours.shape == (101,)
        assert_close_to_librosa(ours, librosa_odf(y, 16000, 1280, 2048, 128), name)
    assert not onset_strength(sigs["silence"]).any()


@pytest.mark.parametrize("n", [0, 1, 100, 1279, 1280, 1281, 2047, 2048, 2049, 5000])
@pytest.mark.parametrize("hop", [1280, 512])
def test_very_short_clips(n, hop, fft_backend):
    rng = np.random.default_rng(n)
    y = (0.3 * rng.standard_normal(n)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa: "n_fft=2048 is too large for input signal"
        ref = librosa_odf(y, 16000, hop, 2048, 128)
    assert_close_to_librosa(onset_strength(y, 16000, hop), ref, f"n={n}")


@pytest.mark.slow
def test_long_clip_ten_minutes(fft_backend):
    rng = np.random.default_rng(7)
    n = 600 * 16000
    y = (0.05 * rng.standard_normal(n) * (np.arange(n) % 24000 < 3000)).astype(np.float32)
    assert_close_to_librosa(onset_strength(y), librosa_odf(y, 16000, 1280, 2048, 128), "10 min")


def test_long_clip_one_minute_spans_several_transform_chunks(fft_backend):
    rng = np.random.default_rng(8)
    n = 60 * 16000
    y = (0.05 * rng.standard_normal(n) * (np.arange(n) % 24000 < 3000)).astype(np.float32)
    for hop in (1280, 256):  # 256: about 3,750 frames, several chunks of the frame budget
        assert_close_to_librosa(onset_strength(y, 16000, hop), librosa_odf(y, 16000, hop, 2048, 128), f"60 s, hop {hop}")


def test_float64_input_matches_librosa_on_float64(fft_backend):
    y = signals(16000, 4.0)["chirp"].astype(np.float64) + 1e-3 * np.random.default_rng(0).standard_normal(64000)
    assert_close_to_librosa(onset_strength(y), librosa_odf(y, 16000, 1280, 2048, 128), "float64")


def test_batch_equals_one_at_a_time_and_follows_order(fft_backend):
    sigs = list(signals(16000, 8.0, seed=5).values())
    batch = onset_strength_batch(sigs)  # a list
    np.testing.assert_array_equal(batch, np.stack([onset_strength(y) for y in sigs]))
    perm = np.random.default_rng(0).permutation(len(sigs))
    np.testing.assert_array_equal(onset_strength_batch([sigs[i] for i in perm]), batch[perm])
    assert onset_strength_batch(np.zeros((0, 16000), np.float32)).shape == (0, 13)


def test_impl_option():
    y = clicks((0.5, 2.0, 2.2))
    np.testing.assert_array_equal(onset_strength(y, impl="librosa"), librosa_odf(y, 16000, 1280, 2048, 128))
    both = onset_strengths(np.stack([y, y[::-1].copy()]), impl="librosa")
    assert_close_to_librosa(onset_strengths(np.stack([y, y[::-1].copy()]))[1], both[1], "reversed")
    with pytest.raises(ValueError, match="impl"):
        onset_strength(y, impl="torch")


def test_non_finite_and_bad_shapes_raise():
    y = clicks((1.0,))
    y[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        onset_strength(y)
    with pytest.raises(ValueError):
        onset_strength_batch([np.zeros(100, np.float32), np.zeros(200, np.float32)])
    with pytest.raises(ValueError):
        onset_strength_batch(np.zeros(100, np.int16))


@pytest.mark.parametrize("sr,n_fft,n_mels", [(16000, 2048, 128), (22050, 1024, 80), (8000, 512, 40), (44100, 2048, 128), (16000, 512, 128)])
def test_mel_bank_is_librosas_and_bands_cover_it(sr, n_fft, n_mels):
    with np.errstate(all="ignore"):
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    bank = mel_filter_bank(sr, n_fft, n_mels)
    np.testing.assert_allclose(bank, ref, rtol=1e-6, atol=1e-9)
    rebuilt = np.zeros_like(bank)
    for first, end, lo, hi, weights in mel_bank_bands(sr, n_fft, n_mels):
        rebuilt[first:end, lo:hi] = weights
    np.testing.assert_array_equal(rebuilt, bank)  # every non-zero weight in exactly one block
    assert not bank.flags.writeable


@pytest.mark.parametrize("n", [1, 2, 3, 400, 2047, 2048])
def test_hann_window_is_scipys(n):
    np.testing.assert_array_equal(hann_window(n), scipy.signal.get_window("hann", n, fftbins=True))


@pytest.mark.parametrize("n_fft,hop", [(2048, 1280), (2048, 512), (512, 160), (7, 3), (8, 20)])
def test_frames_are_the_zero_padded_centred_frames(n_fft, hop):
    """Every chunk of frames, at every length, equals framing ``np.pad(y, n_fft // 2)`` (a naive reference)."""
    from tiva_bench.metrics.functional.onset_strength import _Framing, n_frames

    rng = np.random.default_rng(n_fft + hop)
    for n in (0, 1, hop - 1, hop, n_fft // 2, n_fft - 1, n_fft, n_fft + 1, 3 * n_fft + 5, 10 * hop + 3):
        y = rng.standard_normal(n).astype(np.float32)
        padded = np.pad(y, n_fft // 2)
        t = n_frames(n, hop, n_fft)
        if t == 0:  # an odd n_fft longer than the padded clip: no frame
            assert onset_strength_batch(y, 16000, hop, n_fft, 4).shape == (0,)
            continue
        ref = np.stack([padded[f * hop:f * hop + n_fft] for f in range(t)]).astype(np.float64)
        for chunk in (1, 3, t):
            got = np.full((t, n_fft), np.nan)
            framing = _Framing(y, hop, n_fft, t)
            for first in range(0, t, chunk):
                framing.into(got[first:first + chunk], first)
            np.testing.assert_array_equal(got, ref, err_msg=f"n={n}, chunk={chunk}")


@pytest.mark.parametrize("n", [0, 1, 2047, 2048, 4000, 128000, 128003])
def test_curve_from_pcm16_integers_is_bitwise_the_float_clips(n, fft_backend):
    """``of_pcm16(x)`` folds the 2**-15 into the window; the curve equals the one from
    ``x / 32768`` in float32 (what the decoder gives) bit for bit, extremes and silence included."""
    from tiva_bench.metrics.functional.onset_strength import OnsetStrengthPlan

    rng = np.random.default_rng(n)
    ints = (rng.standard_normal(n) * 3000 * (np.arange(n) % 7000 < 900)).astype(np.int16)
    if n > 10:
        ints[3], ints[7] = -32768, 32767
    plan = OnsetStrengthPlan(n)
    for x in (ints, np.zeros(n, np.int16)):
        as_float = x.astype(np.float32) * np.float32(2.0 ** -15)
        np.testing.assert_array_equal(plan.of_pcm16(x), plan(as_float))
    if n:
        np.testing.assert_allclose(plan.of_pcm16(ints), librosa_odf(ints.astype(np.float32) / 32768, 16000, 1280, 2048, 128),
                                   atol=1e-5 * max(1e-12, float(np.abs(plan.of_pcm16(ints)).max())), rtol=0)
    with pytest.raises(ValueError, match="int16"):
        plan.of_pcm16(ints.astype(np.int32))
