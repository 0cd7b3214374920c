"""Fast TiVA sampling: one UNet call for both guidance branches, bf16, torch.compile (with its
fallback), channels-last, the attention kernel, no host reads in the solver loop, and the
automatic choice of settings. Tiny random models: these tests check maths and plumbing, not speed
(the speed is benchmarks/bench_tiva.py's)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tiva_bench.models.tiva.codec import build_codec
from tiva_bench.models.tiva.config import preset
from tiva_bench.models.tiva.inference import (COMPILE_MODES, EXACT, FAST, PRECISIONS, CompileFallbackWarning, Denoiser,
                                              InferenceSettings, default_settings, resolve_settings)
from tiva_bench.models.tiva.model import TiVAModel
from tiva_bench.models.tiva.pipeline import TiVAPipeline, load_pipeline

STEPS = 2  # a first-order then a second-order solver step


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions on a shared CPU: one thread is ~100x faster than two spinning threads
    waiting for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    """The tiny preset with a latent a quarter as long (a quarter of the UNet's cost)."""
    torch.manual_seed(0)
    return TiVAModel(dataclasses.replace(preset("tiva-tiny"), latent_time=32)).eval()


@pytest.fixture(scope="module")
def inputs(model):
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    n_layers = len(cfg.cls_layers)
    cls = torch.randn(2, cfg.n_frames, n_layers, cfg.feature_dim, generator=g)
    patch = torch.randn(2, cfg.n_frames, n_layers, cfg.patch_grid ** 2, cfg.feature_dim, generator=g)
    x = torch.randn(2, cfg.latent_channels, cfg.latent_time, cfg.latent_freq, generator=g)
    with torch.no_grad():
        s = model.semantic(cls)
        layout_map = model.layout_map(model.layout(cls, patch), 2, "cpu")
    return cls, patch, x, s, layout_map


def _pipe(model, settings=EXACT):
    return TiVAPipeline(copy.deepcopy(model), build_codec(model.cfg, random_init=True), None, settings=settings)


def _sample(pipe, cls, patch, **kw):
    return pipe(cls, patch, steps=STEPS, seed=1, guidance=5.0, decode=False, **kw).latents


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_one_batched_unet_call_equals_two_calls_combined_by_hand(model, inputs):
    """Reference: a hand-written DPM-Solver loop calling the UNet once per branch per step."""
    cls, patch, _, s, layout_map = inputs
    pipe = _pipe(model)
    got = _sample(pipe, cls, patch)
    g = pipe.model.generator
    sched = copy.deepcopy(pipe.scheduler)  # the same solver and clipping; the guidance is under test
    sched.set_timesteps(STEPS)
    x = torch.randn((2, *got.shape[1:]), generator=torch.Generator().manual_seed(1)) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            eps_u = g(x, t, torch.zeros_like(s), layout_map)
            eps_c = g(x, t, s, layout_map)
            x = sched.step(eps_u + 5.0 * (eps_c - eps_u), t, x).prev_sample
    # float32 kernels differ between a batch of 2 and of 4 (x guidance 5)
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)
    # and one denoiser step against one pair of calls, tighter
    d = Denoiser(g)
    t = sched.timesteps[0]
    with torch.no_grad():
        eps = d(inputs[2], t, d.prepare(s, layout_map, True), 5.0)
        eps_u, eps_c = g(inputs[2], t, torch.zeros_like(s), layout_map), g(inputs[2], t, s, layout_map)
    torch.testing.assert_close(eps, eps_u + 5.0 * (eps_c - eps_u), rtol=1e-5, atol=1e-5)


def test_bf16_stays_within_tolerance_of_fp32(model, inputs):
    """bf16 keeps about 3 significant digits: one UNet estimate is within 3% (relative L2), a guided
    one within 10% (guidance 5 multiplies the branches' difference), and the latents after the
    solver steps within 10%; measured on this model: 1.2%, 5.0% and 5.3%. The solver state stays
    float32."""
    cls, patch, x, s, layout_map = inputs
    g = model.generator
    t = torch.tensor(800)
    with torch.no_grad():
        ref = g(x, t, s, layout_map)
        bf = Denoiser(g, InferenceSettings(precision="bf16"))
        got = bf(x, t, bf.prepare(s, layout_map, False), None)
        got_guided = bf(x, t, bf.prepare(s, layout_map, True), 5.0)
        exact = Denoiser(g)
        ref_guided = exact(x, t, exact.prepare(s, layout_map, True), 5.0)
    assert got.dtype == torch.float32
    assert 1e-4 < _rel(got, ref) < 0.03  # bf16 did run (not bit-equal), and stays close
    assert _rel(got_guided, ref_guided) < 0.1
    latents = _sample(_pipe(model, InferenceSettings(precision="bf16")), cls, patch)
    assert latents.dtype == torch.float32
    assert _rel(latents, _sample(_pipe(model), cls, patch)) < 0.1


def test_compiled_path_matches_eager_and_pads_smaller_batches(model, inputs):
    """torch.compile traced by dynamo (aot_eager backend: fast to compile; inductor is the slow
    test below). A later batch of 1 runs in the compiled batch of 2 (padded), not a new compile."""
    cls, patch = inputs[:2]
    ref = _sample(_pipe(model), cls, patch)
    pipe = _pipe(model, InferenceSettings(compile="default", backend="aot_eager"))
    torch.testing.assert_close(_sample(pipe, cls, patch), ref, rtol=1e-5, atol=1e-5)
    one = _sample(pipe, cls[:1], patch[:1])
    torch.testing.assert_close(one, ref[:1], rtol=1e-4, atol=1e-4)
    record = pipe.inference_record()
    assert record["compiled_batches"] == [2] and record["compile_fallback"] is None and record["name"] == "fp32+default"


@pytest.mark.slow
def test_inductor_compiled_path_matches_eager_on_the_cpu(model, inputs):
    """Needs a C++ compiler (minutes on a small CPU); measured max relative difference 6e-6."""
    cls, patch = inputs[:2]
    pipe = _pipe(model, InferenceSettings(compile="default"))
    got = _sample(pipe, cls, patch)
    assert pipe.inference_record()["compile_fallback"] is None
    assert _rel(got, _sample(_pipe(model), cls, patch)) < 1e-4


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(model, inputs):
    from torch._dynamo import register_backend

    @register_backend(name="tiva_test_broken")
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler found\nsecond line of the compiler's output")

    cls, patch = inputs[:2]
    pipe = _pipe(model, InferenceSettings(compile="default", backend="tiva_test_broken"))
    with pytest.warns(CompileFallbackWarning) as caught:
        got = _sample(pipe, cls, patch)
    caught = [str(w.message) for w in caught if issubclass(w.category, CompileFallbackWarning)]
    assert len(caught) == 1 and "\n" not in caught[0] and "no C++ compiler found" in caught[0]
    assert torch.equal(got, _sample(_pipe(model), cls, patch))  # the eager path, bit for bit
    assert "no C++ compiler found" in pipe.inference_record()["compile_fallback"]


def test_channels_last_and_the_attention_kernel_keep_the_outputs(model, inputs):
    _, _, x, s, layout_map = inputs
    t = torch.tensor(500)
    with torch.no_grad():
        ref = model.generator(x, t, s, layout_map)
        for settings in (InferenceSettings(channels_last=True), InferenceSettings(attention="math")):
            d = Denoiser(copy.deepcopy(model.generator), settings)
            torch.testing.assert_close(d(x, t, d.prepare(s, layout_map, False), None), ref, rtol=1e-5, atol=1e-5)
            assert d.generator.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last) == settings.channels_last
        # the kernel choice is applied: the CPU has no memory-efficient attention kernel
        d = Denoiser(copy.deepcopy(model.generator), InferenceSettings(attention="efficient"))
        with pytest.raises(RuntimeError, match="(?i)no viable backend|no available kernel"):
            d(x, t, d.prepare(s, layout_map, False), None)


class _HostReads(TorchDispatchMode):
    """Records operators that read a tensor's value back to the host (``.item()``, ``bool()``,
    ``nonzero``): on a GPU each is a synchronisation."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten._local_scalar_dense, torch.ops.aten.nonzero):
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_the_solver_loop_reads_nothing_back_to_the_host(model, inputs):
    cls, patch, x, s, layout_map = inputs
    pipe = _pipe(model)
    pipe.scheduler.set_timesteps(STEPS)
    pipe.scheduler.set_begin_index(0)
    cond = pipe.denoiser.prepare(s, layout_map, True)
    with _HostReads() as reads, torch.no_grad():
        pipe.denoise(x.clone(), cond, 5.0)
    assert reads.seen == []
    # the check can fail: without the begin index the solver looks its first step up
    pipe.scheduler.set_timesteps(STEPS)
    with _HostReads() as reads, torch.no_grad():
        pipe.denoise(x.clone(), cond, 5.0)
    assert reads.seen


@pytest.mark.gpu
def test_no_synchronisation_inside_the_solver_loop_on_a_gpu(model, inputs):
    cls, patch, x, s, layout_map = inputs
    for settings in (EXACT, dataclasses.replace(FAST, compile="off"), FAST):
        pipe = TiVAPipeline(copy.deepcopy(model), build_codec(model.cfg, random_init=True), None, "cuda", settings)
        cond = pipe.denoiser.prepare(s.cuda(), layout_map.cuda(), True)
        for debug in ("default", "error"):  # the first run compiles and records the CUDA graph
            pipe.scheduler.set_timesteps(STEPS, device="cuda")
            pipe.scheduler.set_begin_index(0)
            torch.cuda.set_sync_debug_mode(debug)
            try:
                with torch.no_grad():
                    pipe.denoise(x.cuda(), cond, 5.0)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert pipe.inference_record().get("compile_fallback") is None


def test_fast_settings_only_for_the_paper_model_on_cuda():
    paper, tiny = preset("tiva-paper"), preset("tiva-tiny")
    assert default_settings(paper, "cuda") == FAST and default_settings(paper, torch.device("cuda:1")) == FAST
    assert default_settings(paper, "cpu") == EXACT
    assert default_settings(tiny, "cuda") == EXACT and default_settings(tiny, "cpu") == EXACT
    assert default_settings(preset("tiva-tiny-nolayout"), "cuda") == EXACT
    assert default_settings(dataclasses.replace(paper, layout_kind="onset"), "cuda") == FAST  # an ablation of the paper model
    assert FAST.precision == "bf16" and FAST.compile == "reduce-overhead" and EXACT.precision == "fp32" and EXACT.compile == "off"
    assert resolve_settings(paper, "cuda", precision="fp32") == dataclasses.replace(FAST, precision="fp32")
    assert resolve_settings(tiny, "cpu", compile="default") == InferenceSettings(compile="default")
    assert resolve_settings(paper, "cuda", "auto", "auto") == FAST
    with pytest.raises(ValueError, match="precision"):
        resolve_settings(paper, "cuda", precision="int8")
    # what a pipeline picks on the CPU: the shipped tiny model keeps float32 eager
    assert load_pipeline(preset_name="tiva-tiny").settings == EXACT


def test_generate_passes_the_settings_and_records_them(tmp_path):
    import json

    import numpy as np

    from tiva_bench.baselines.tiva import generate_folder
    from tiva_bench.core.media_write import write_video

    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "a.mp4", np.zeros((102, 32, 32, 3), np.uint8), 10)
    summary = generate_folder(tmp_path / "v", tmp_path / "out", preset_name="tiva-tiny", steps=2, batch_size=1, quiet=True, precision="bf16")
    record = json.loads((tmp_path / "out" / "timing.json").read_text())["timing"]["inference"]
    assert record == summary["timing"]["inference"] and record["name"] == "bf16-eager" and record["precision"] == "bf16"


def test_the_generate_command_offers_every_setting():
    import argparse

    from tiva_bench.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = {a.dest: a for a in sub.choices["generate"]._actions}
    assert list(options["precision"].choices) == ["auto", *PRECISIONS] and options["precision"].default == "auto"
    assert list(options["compile"].choices) == ["auto", *COMPILE_MODES] and options["compile"].default == "auto"
