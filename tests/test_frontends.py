"""Batched torch front-ends against the reference front-ends, and the precision each backbone runs in.

Front-ends: each batched torch front-end (VGGish, Melception, ImageBind) is compared with the
reference front-end (numpy/librosa/torchaudio, one clip at a time) on noise, a tone, a chirp and
silence at several lengths; the front-ends that are torch code inside the network (PANNs, PaSST,
the synthetic classifier) are compared with float64 numpy references written here. The measure is
``max |got - ref| / max |ref|`` over the batch, on what the network receives.

Precision: random-weight networks (the tests check the arithmetic, not a metric) run on the
front-ends' outputs in float32 and in lower precisions; the measure is the worst clip's
``||e - e32|| / ||e32||``. A backbone's CUDA default is a lower precision only where it stays under
half the 1e-3 bound here (a factor 2 for the GPU's other kernels and trained weights' other
ranges); the tests check the defaults both ways. float16/bfloat16 run under CPU autocast; TF32
(CUDA only) is emulated by truncating the operands of every matrix product and convolution to
TF32's 10-bit mantissa, a pessimistic bound on the tensor cores' own rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils._python_dispatch import TorchDispatchMode

from tiva_bench.config import ScoreConfig
from tiva_bench.core.errors import TivaBenchError
from tiva_bench.extract import feature_cache
from tiva_bench.metrics.extractors import get_extractor
from tiva_bench.metrics.extractors.base import resolve_frontend, resolve_precision
from tiva_bench.metrics.extractors.precision import precision_scope, run_network

FRONTEND_TOLERANCE = 1e-4
PRECISION_TOLERANCE = 1e-3


def signals(sr: int, seconds: float) -> np.ndarray:
    """``(4, n)`` float32: noise, a 440-Hz tone, a chirp with clicks, silence."""
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    rng = np.random.default_rng(n)
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 1500 * t**2))
    chirp[:: max(1, n // 5)] += 0.9
    return np.stack([rng.standard_normal(n) * 0.1, 0.5 * np.sin(2 * np.pi * 440 * t), chirp, np.zeros(n)]).astype(np.float32)


def deviation(got, ref) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def random_extractor(name: str, frontend: str = "reference", **arch):
    torch.manual_seed(0)
    ex = get_extractor(name, "cpu", batch_size=8, frontend=frontend)
    if arch:
        ex.arch = arch
    ex.build()
    ex._loaded = True
    return ex


SMALL_IMAGEBIND = dict(vision_dim=32, vision_depth=1, vision_heads=2, audio_dim=16, audio_depth=1, audio_heads=2, out_dim=8)


# ---------------------------------------------------------------------------------------------
# batched torch front-ends against the reference front-ends


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.5])
def test_vggish_batched_front_end_equals_the_numpy_reference(seconds):
    from tiva_bench.metrics.extractors.vggish import VGGishFrontend, vggish_examples

    wavs = signals(16000, seconds)
    ref = np.stack([vggish_examples(w) for w in wavs])
    got = VGGishFrontend()(torch.from_numpy(wavs)).numpy()
    assert got.shape == ref.shape == (4, int(seconds // 0.96), 96, 64)
    if ref.size:
        assert deviation(got, ref) < FRONTEND_TOLERANCE


@pytest.mark.parametrize("seconds", [3.0, 10.0, 10.5])
def test_melception_batched_front_end_equals_the_librosa_reference(seconds):
    from tiva_bench.metrics.extractors.melception import MelceptionFrontend, melception_inputs

    mean, std = np.linspace(0.2, 0.6, 80).astype(np.float32), np.linspace(0.1, 0.3, 80).astype(np.float32)
    wavs = signals(22050, seconds)
    ref = melception_inputs(wavs, mean, std)
    got = MelceptionFrontend(mean, std)(torch.from_numpy(wavs)).numpy()
    assert got.shape == (4, 1, 80, 860)
    assert deviation(got, ref) < FRONTEND_TOLERANCE


@pytest.mark.parametrize("seconds", [1.3, 5.3, 8.0, 10.0])
def test_imagebind_batched_front_end_equals_torchaudio_clip_by_clip(seconds):
    """Covers overlapping clips (under 8 s, where the in-place mean removal carries over) and
    clips shorter than the 2-s clip length."""
    from tiva_bench.metrics.extractors.imagebind import audio_clips, audio_clips_batched, kaldi_mel_banks

    wavs = signals(16000, seconds)
    ref = torch.stack([audio_clips(w) for w in wavs]).numpy()
    got = audio_clips_batched(torch.from_numpy(wavs), kaldi_mel_banks()).numpy()
    assert got.shape == (4, 3, 1, 128, 204)
    assert deviation(got, ref) < FRONTEND_TOLERANCE
    np.testing.assert_array_equal(wavs, signals(16000, seconds))  # the caller's waveforms are untouched


def framed(wav: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred frames with reflect padding (float64), ``(frames, n_fft)``."""
    return sliding_window_view(np.pad(np.asarray(wav, np.float64), n_fft // 2, mode="reflect"), n_fft)[::hop]


def kaldi_mel_weights(n_mels: int, n_fft: int, sr: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's triangular mel weights ``(n_mels, n_fft // 2 + 1)`` from the formula (Nyquist row zero)."""
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)  # noqa: E731
    step = (mel(fmax) - mel(fmin)) / (n_mels + 1)
    left = mel(fmin) + step * np.arange(n_mels)[:, None]
    bins = mel(sr / n_fft * np.arange(n_fft // 2))[None, :]
    rise, fall = (bins - left) / step, (left + 2 * step - bins) / step
    return np.pad(np.maximum(0.0, np.minimum(rise, fall)), ((0, 0), (0, 1)))


def panns_reference(wav):
    """float64 arithmetic on PANNs' float32 coefficients (the checkpoint stores its STFT kernels,
    periodic Hann x DFT, and its mel weights, librosa's, in float32)."""
    import librosa

    n, k = np.arange(512), np.arange(257)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 512)
    kernels = (window * np.exp(-2j * np.pi * k * n / 512)).astype(np.complex64).astype(np.complex128)  # float32 parts
    power = np.abs(framed(wav, 512, 160) @ kernels.T) ** 2
    mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).astype(np.float64)
    return 10 * np.log10(np.maximum(power @ mel.T, 1e-10))


def test_panns_front_end_equals_a_float64_reference():
    """Run in float64 it is the reference's arithmetic. In float32 (as PANNs runs, on every
    device) it is within 1e-4 of the dB range for noise and silence; for a pure tone or a chirp,
    the float32 direct-DFT sums leave a noise floor some 80 dB under the peak where float64 goes
    down to the -100 dB floor, which moves those quiet bins by up to 0.03 dB (3e-4 of the range)."""
    from tiva_bench.metrics.extractors.panns import Cnn14

    wavs = signals(16000, 1.3)
    ref = np.stack([panns_reference(w) for w in wavs])
    net = Cnn14()
    with torch.no_grad():
        exact = net.double().log_mel(torch.from_numpy(wavs).double())[:, 0].numpy()
        single = net.float().log_mel(torch.from_numpy(wavs))[:, 0].numpy()
    assert deviation(exact, ref) < 1e-9
    noise, tone, chirp, silence = range(4)
    assert deviation(single[[noise, silence]], ref[[noise, silence]]) < FRONTEND_TOLERANCE
    assert deviation(single[[tone, chirp]], ref[[tone, chirp]]) < 3e-4


def test_passt_front_end_equals_a_float64_reference():
    """hear21passt's mel in evaluation mode: pre-emphasis, symmetric 800-point Hann centred in a
    1024-point frame, Kaldi mel weights 0-15 kHz, ``(log(mel + 1e-5) + 4.5) / 5``."""
    from tiva_bench.metrics.extractors.passt import build_passt

    mel, _ = build_passt()
    wavs = signals(32000, 1.3)
    window = np.zeros(1024)
    window[112:912] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 799)
    banks = kaldi_mel_weights(128, 1024, 32000, 0.0, 15000.0)
    ref = []
    for w in wavs.astype(np.float64):
        power = np.abs(np.fft.rfft(framed(w[1:] - 0.97 * w[:-1], 1024, 320) * window, axis=1)) ** 2
        ref.append(((np.log(power @ banks.T + 1e-5) + 4.5) / 5).T)
    with torch.no_grad():
        got = mel(torch.from_numpy(wavs)).numpy()
    assert deviation(got, np.stack(ref)) < FRONTEND_TOLERANCE


def test_synth_classifier_front_end_equals_a_float64_reference():
    import librosa

    from tiva_bench.metrics.extractors.synth_classifier import build_model

    wavs = signals(16000, 1.3)
    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    ref = [np.log(np.maximum(basis @ (np.abs(np.fft.rfft(framed(w, 1024, 320) * window, axis=1)) ** 2).T, 1e-5)) for w in wavs]
    with torch.no_grad():
        got = build_model().frontend(torch.from_numpy(wavs))[:, 0].numpy()
    assert deviation(got, np.stack(ref)) < FRONTEND_TOLERANCE


@pytest.mark.parametrize("name, seconds, arch", [("vggish", 2.0, {}), ("imagebind", 8.0, SMALL_IMAGEBIND)])
def test_extractor_outputs_agree_across_front_ends(name, seconds, arch):
    """The whole extractor (random weights) with either front-end, batched four at a time."""
    reference, device = random_extractor(name, "reference", **arch), random_extractor(name, "device", **arch)
    wavs = signals(reference.spec.sample_rate, seconds)
    a, b = reference(wavs)["embedding"], device(wavs)["embedding"]
    assert deviation(b, a) < FRONTEND_TOLERANCE


# ---------------------------------------------------------------------------------------------
# which front-end and precision run, and the cache key that records them


def test_device_front_end_and_cuda_precision_are_the_defaults_on_cuda_only():
    assert resolve_frontend("auto", "cuda:1") == "device" and resolve_frontend("auto", "cpu") == "reference"
    assert resolve_frontend("device", "cpu") == "device"
    assert resolve_precision("auto", "cuda", "float16") == "float16" and resolve_precision("auto", "cpu", "float16") == "float32"
    assert resolve_precision("tf32", "cpu", "float32") == "float32"  # no TF32 off CUDA: record what runs
    assert resolve_precision("bfloat16", "cpu", "float32") == "bfloat16"
    with pytest.raises(TivaBenchError, match="unknown precision"):
        resolve_precision("half", "cpu", "float32")
    with pytest.raises(TivaBenchError, match="unknown front-end"):
        resolve_frontend("gpu", "cpu")
    on_cuda = get_extractor("vggish", "cuda")  # not built: nothing touches CUDA here
    assert on_cuda.frontend == "device" and on_cuda.dtype == type(on_cuda).cuda_precision
    on_cpu = get_extractor("vggish", "cpu")
    assert on_cpu.frontend == "reference" and on_cpu.dtype == "float32"


def test_front_end_and_dtype_are_in_the_feature_cache_key(tmp_path):
    cfg = ScoreConfig(cache_dir=str(tmp_path))
    keys = {}
    for options in ({}, {"frontend": "device"}, {"precision": "bfloat16"}):
        ex = get_extractor("vggish", "cpu", **options)
        keys[tuple(options.items())] = feature_cache(ex, cfg).settings_digest
    assert len(set(keys.values())) == 3
    default = get_extractor("vggish", "cpu")
    assert "implementation" not in default.spec.frontend  # features cached before keep their key
    assert get_extractor("vggish", "cpu", frontend="device").spec.frontend["implementation"] == "torch-batched"
    panns = get_extractor("panns", "cpu", frontend="device")  # one implementation: nothing to record
    assert "implementation" not in panns.spec.frontend


# ---------------------------------------------------------------------------------------------
# precision


TF32_TRUNCATED_OPERANDS = {  # op -> positions of the multiplied operands
    "mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2), "convolution": (0, 1),
}
FUSED_KERNELS = ("scaled_dot_product", "mkldnn", "flash", "_convolution")


def tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 truncated to TF32's 10-bit mantissa (sign and 8-bit exponent kept)."""
    return (x.contiguous().view(torch.int32) & ~0x1FFF).view(torch.float32)


class EmulatedTF32(TorchDispatchMode):
    """Truncate the float32 operands of every matrix product and convolution to TF32; refuse
    fused kernels whose inner products it cannot reach (run attention through the math path)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        assert not any(k in name for k in FUSED_KERNELS), f"{name} would escape the TF32 emulation"
        if name in TF32_TRUNCATED_OPERANDS:
            self.seen.add(name)
            args = list(args)
            for i in TF32_TRUNCATED_OPERANDS[name]:
                if isinstance(args[i], torch.Tensor) and args[i].dtype == torch.float32:
                    args[i] = tf32(args[i])
        return func(*args, **(kwargs or {}))


def embeddings_in(precision: str, network, x: torch.Tensor) -> np.ndarray:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x = x.clone()  # not an inference tensor: under no_grad, composite ops reach the dispatch mode decomposed
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        if precision == "tf32":
            mode = EmulatedTF32()
            with mode:
                out, _ = run_network(network, x, "cpu", "float32")
            assert mode.seen, "no matrix product was emulated"
        else:
            out, _ = run_network(network, x, "cpu", precision)
    return out["embedding"].reshape(x.shape[0], -1).numpy().astype(np.float64)


def precision_deviation(name: str, precision: str, seconds: float, crop: int | None = None, **arch) -> float:
    """Worst per-clip ``||e - e32|| / ||e32||`` over noise, tone and chirp (silence is left out:
    a random network's embedding of silence is its biases alone). ``crop``: keep this many time
    frames of the network's input (ImageBind: this many of its three 2-s clips), to save time."""
    ex = random_extractor(name, **arch)
    with torch.inference_mode():
        x = ex.reference_inputs(signals(ex.spec.sample_rate, seconds)[:3])
    if crop is not None:
        x = (x[:, :crop] if name == "imagebind" else x[..., :crop]).contiguous()
    ref = embeddings_in("float32", ex.network, x)
    got = embeddings_in(precision, ex.network, x)
    return float(np.max(np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)))


def test_tf32_emulation_is_coarser_than_float32_and_can_fail():
    """The emulation changes results (it is not a no-op) by about TF32's precision."""
    torch.manual_seed(0)
    a, b = torch.randn(64, 256), torch.randn(256, 64)
    with EmulatedTF32():
        emulated = a @ b
    err = float((emulated - a @ b).abs().max() / (a @ b).abs().max())
    assert 1e-5 < err < 1e-2
    assert float((tf32(a) - a).abs().max() / a.abs().max()) <= 2**-10


@pytest.mark.parametrize("name, seconds, crop", [("vggish", 1.0, None), pytest.param("panns", 1.0, None, marks=pytest.mark.slow)])
def test_cuda_precision_keeps_embeddings_within_1e3_of_float32(name, seconds, crop):
    """With a factor-2 margin, for the GPU's other kernels and trained weights' other ranges."""
    precision = get_extractor(name, "cuda").dtype
    assert precision != "float32"
    assert precision_deviation(name, precision, seconds, crop) < PRECISION_TOLERANCE / 2


def test_synth_classifier_stays_in_float32_for_want_of_margin():
    """float16 moves it by 7e-4 and TF32 (emulated) by 3e-3: within the bound without the
    factor-2 margin a default needs (and the network is too small for the gain to matter)."""
    assert get_extractor("synth_classifier", "cuda").dtype == "float32"
    assert PRECISION_TOLERANCE / 2 < precision_deviation("synth_classifier", "float16", 1.0)
    assert PRECISION_TOLERANCE < precision_deviation("synth_classifier", "tf32", 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("name, seconds, crop, arch, margin_only", [
    ("melception", 10.0, 300, {}, ()), ("imagebind", 8.0, 1, {"vision_depth": 0}, ("float16",)), ("passt", 10.0, 300, {}, ("float16",)),
])
def test_backbones_kept_in_float32_have_no_lower_precision_with_margin(name, seconds, crop, arch, margin_only):
    """The measurements behind keeping these in float32 on CUDA: every lower precision moves the
    embeddings by more than 1e-3, or (``margin_only``) by more than half of it. TF32 is emulated
    by truncation, a pessimistic bound: if the tensor cores round, TF32 may pass; the device run
    of ``benchmarks/bench_extractors.py`` measures every precision there."""
    assert get_extractor(name, "cuda").dtype == "float32"
    for precision in ("bfloat16", "float16", "tf32"):
        bound = PRECISION_TOLERANCE / 2 if precision in margin_only else PRECISION_TOLERANCE
        assert precision_deviation(name, precision, seconds, crop, **arch) > bound, precision


def test_mixed_precision_recomputes_a_non_finite_batch_in_float32():
    net = torch.nn.Linear(4, 4)
    with torch.no_grad():
        net.weight.fill_(3e4)  # 4 * 3e4 * 1 overflows float16 (max 65504)
        net.bias.zero_()
    x = torch.ones(2, 4)
    out, fell_back = run_network(lambda v: {"embedding": net(v)}, x, "cpu", "float16")
    assert fell_back and torch.equal(out["embedding"], torch.full((2, 4), 1.2e5))
    with torch.no_grad():
        net.weight.fill_(1.0)
    out, fell_back = run_network(lambda v: {"embedding": net(v)}, x, "cpu", "float16")
    assert not fell_back and torch.equal(out["embedding"], torch.full((2, 4), 4.0))


def test_precision_scope_sets_and_restores_the_tf32_flags():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with precision_scope("cpu", "tf32"):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    with precision_scope("cpu", "float32"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    with pytest.raises(ValueError, match="unknown precision"):
        with precision_scope("cpu", "int8"):
            pass
