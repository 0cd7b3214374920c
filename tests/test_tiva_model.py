"""The TiVA model: shapes, save/load, determinism, guidance, gradients, training, DDP, layouts.

Models here are randomly initialised: these tests check plumbing and maths, never quality.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tiva_bench.models.tiva.codec import build_codec
from tiva_bench.models.tiva.config import preset
from tiva_bench.models.tiva.frame_encoder import frame_encoder_for
from tiva_bench.models.tiva.layout import layout_to_latent_map, mel_layout
from tiva_bench.models.tiva.model import TiVAModel
from tiva_bench.models.tiva.pipeline import TiVAPipeline

REPO = Path(__file__).resolve().parents[1]


def tiny(**changes):
    return dataclasses.replace(preset("tiva-tiny"), **changes)


def features(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_layers = len(cfg.cls_layers)
    return (torch.randn(batch, cfg.n_frames, n_layers, cfg.feature_dim, generator=g),
            torch.randn(batch, cfg.n_frames, n_layers, cfg.patch_grid ** 2, cfg.feature_dim, generator=g))


def pipeline(cfg, seed=0):
    torch.manual_seed(seed)
    return TiVAPipeline(TiVAModel(cfg), build_codec(cfg, random_init=True), None)


def test_tiny_shapes_through_the_whole_pipeline():
    cfg = tiny()
    pipe = TiVAPipeline(TiVAModel(cfg), build_codec(cfg), frame_encoder_for(cfg))
    frames = [np.random.default_rng(k).integers(0, 255, (102, 64, 64, 3), dtype=np.uint8) for k in range(2)]
    cls, patch = pipe.encode_frames(frames)
    assert cls.shape == (2, 102, 3, 48) and patch.shape == (2, 102, 3, cfg.patch_grid ** 2, 48)
    out = pipe(cls, patch, steps=2, return_layout=True)
    assert out.waveforms.shape == (2, 163840) and out.latents.shape == (2, 4, 128, 16) and out.layout.shape == (2, 102, 5)
    assert np.isfinite(out.waveforms).all()


def test_paper_preset_builds_and_runs_one_sampling_step_with_the_paper_shapes():
    cfg = preset("tiva-paper")
    model = TiVAModel(cfg)
    assert model.generator.unet.conv_in.in_channels == 9 and cfg.in_channels == 9
    pipe = TiVAPipeline(model, build_codec(cfg, random_init=True), None)
    cls, patch = features(cfg, batch=1)
    assert cls.shape == (1, 102, 3, 768)
    out = pipe(cls, patch, steps=1, decode=False, return_layout=True)
    assert out.latents.shape == (1, 8, 256, 16) and out.layout.shape == (1, 102, 5)
    assert model.layout_map(out.layout, 1, "cpu").shape == (1, 1, 256, 16)


@pytest.mark.slow
def test_paper_codec_decodes_latents_to_16khz_audio():
    cfg = preset("tiva-paper")
    codec = build_codec(cfg, random_init=True)
    mel = codec.decode_mel(torch.zeros(1, 8, 256, 16))
    assert mel.shape == (1, 1024, 64)
    assert codec.vocode(mel, 163840).shape == (1, 163840)
    assert codec.encode(torch.zeros(1, 163840)).shape == (1, 8, 256, 16)


def test_save_load_round_trip_gives_identical_weights_and_audio(tmp_path):
    cfg = tiny()
    pipe = pipeline(cfg)
    path = pipe.model.save(tmp_path / "m.safetensors", extra={"note": "x"})
    loaded = TiVAModel.load(path)
    assert loaded.cfg == cfg
    for (k, a), (_, b) in zip(pipe.model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    cls, patch = features(cfg)
    a = pipe(cls, patch, steps=3, seed=5, decode=False).latents
    b = TiVAPipeline(loaded, build_codec(cfg), None)(cls, patch, steps=3, seed=5, decode=False).latents
    assert torch.equal(a, b)


def test_a_partial_checkpoint_holds_only_its_parts_and_refuses_the_others(tmp_path):
    from safetensors import safe_open

    from tiva_bench.models.tiva.model import UntrainedPartError

    cfg = tiny(layout_kind="onset")  # a model with a lift
    torch.manual_seed(0)
    model = TiVAModel(cfg)
    path = model.save(tmp_path / "g.safetensors", parts=("semantic", "generator", "lift"), half=True)
    with safe_open(str(path), "pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.split(".")[0] in ("semantic", "generator", "lift") for k in keys)
    assert any(k.startswith("lift.") for k in keys)
    loaded = TiVAModel.load(path)
    assert loaded.untrained_parts == ("layout",)
    for name in ("semantic", "generator", "lift"):
        for k, v in getattr(model, name).state_dict().items():
            assert torch.equal(getattr(loaded, name).state_dict()[k], v.half().float()), k
    cls, patch = features(cfg)
    with pytest.raises(UntrainedPartError, match="g.safetensors holds no trained layout part"):
        loaded.layout(cls, patch)
    # the parts it holds work: ground-truth layouts through S and G
    layout = torch.rand(2, cfg.layout_time, 1)
    out = TiVAPipeline(loaded, build_codec(cfg), None)(cls, patch, steps=1, seed=0, decode=False, layout=layout)
    assert torch.isfinite(out.latents).all()
    # saving it again keeps it partial
    again = TiVAModel.load(loaded.save(tmp_path / "again.safetensors"))
    assert again.untrained_parts == ("layout",)


def test_a_seed_determines_the_output_and_batching_does_not_matter():
    cfg = tiny()
    pipe = pipeline(cfg)
    cls, patch = features(cfg, batch=3)
    a = pipe(cls, patch, steps=3, seed=1, decode=False).latents
    assert torch.equal(a, pipe(cls, patch, steps=3, seed=1, decode=False).latents)
    assert not torch.allclose(a, pipe(cls, patch, steps=3, seed=2, decode=False).latents)
    gens = lambda: [torch.Generator().manual_seed(100 + k) for k in range(3)]  # noqa: E731
    whole = pipe(cls, patch, steps=3, generator=gens(), decode=False, batch_size=3).latents
    split = pipe(cls, patch, steps=3, generator=gens(), decode=False, batch_size=1).latents
    # the same noise per clip; float32 kernels differ with batch size (x guidance 5), hence 2e-3
    torch.testing.assert_close(whole, split, rtol=1e-3, atol=2e-3)


def test_guidance_one_equals_the_conditional_branch_alone():
    """Reference: a hand-written DPM-Solver loop that only ever calls the conditional branch."""
    cfg = tiny()
    pipe = pipeline(cfg)
    cls, patch = features(cfg, batch=1)
    got = pipe(cls, patch, steps=4, seed=3, guidance=1.0, decode=False).latents
    m = pipe.model
    with torch.no_grad():
        s = m.semantic(cls)
        lmap = m.layout_map(m.layout(cls, patch), 1, "cpu")
        sched = copy.deepcopy(pipe.scheduler)  # the same solver (and clipping); the branch logic is under test
        sched.set_timesteps(4)
        x = torch.randn((1, cfg.latent_channels, cfg.latent_time, cfg.latent_freq), generator=torch.Generator().manual_seed(3)) * sched.init_noise_sigma
        for t in sched.timesteps:
            x = sched.step(m.generator(x, t, s, lmap), t, x).prev_sample
    torch.testing.assert_close(got, x)
    # and guidance 5 differs from it
    assert not torch.allclose(got, pipe(cls, patch, steps=4, seed=3, guidance=5.0, decode=False).latents)


def test_switches_for_ablations():
    cfg = tiny()
    pipe = pipeline(cfg)
    cls, patch = features(cfg, batch=1)
    base = pipe(cls, patch, steps=2, seed=0, decode=False).latents
    assert not torch.allclose(base, pipe(cls, patch, steps=2, seed=0, decode=False, use_layout=False).latents)
    assert not torch.allclose(base, pipe(cls, patch, steps=2, seed=0, decode=False, use_semantics=False).latents)
    gt = torch.rand(1, 102, 5)
    out = pipe(cls, patch, steps=2, seed=0, decode=False, layout=gt, return_layout=True)
    assert torch.equal(out.layout, gt)
    with pytest.raises(ValueError, match="frames"):
        pipe(cls[:, :50], patch[:, :50], steps=2)


def test_joint_stage_gradients_reach_t_s_g_but_not_clip():
    pytest.importorskip("open_clip")
    from tiva_bench.models.tiva.clip_encoder import CLIPFrameEncoder
    from tiva_bench.models.tiva.losses import StageLoss
    from tiva_bench.models.tiva.stages import trainable

    # 4 frames instead of 102 keep the CLIP forward cheap; the property does not depend on it
    cfg = dataclasses.replace(tiny(), frame_encoder="clip", feature_dim=768, cls_layers=(4, 8, 11), semantic_layer=11, n_frames=4, layout_time=4)
    clip = CLIPFrameEncoder(random_init=True, patch_grid=cfg.patch_grid)
    model = TiVAModel(cfg)
    trainable(model, "joint")
    images = torch.randn(2 * 4, 3, 224, 224) * 0.1
    cls, patch = clip(images)
    batch = {"cls": cls.view(2, 4, 3, 768), "patch": patch.view(2, 4, 3, cfg.patch_grid ** 2, 768),
             "latent": torch.randn(2, 4, 128, 16), "layout": torch.rand(2, 4, 5)}
    loss, _ = StageLoss(model, "joint")(batch, torch.Generator().manual_seed(0))  # Eq. 10: T learns through G alone
    loss.backward()
    for name, part in (("T", model.layout), ("S", model.semantic), ("G", model.generator)):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), name
    assert all(p.grad is None and not p.requires_grad for p in clip.parameters())


def test_layout_is_min_max_normalised_mel_block_averaged():
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(2, 204, 10)).astype(np.float32)
    got = mel_layout(torch.from_numpy(mel), 102, 5).numpy()
    for b in range(2):
        norm = (mel[b] - mel[b].min()) / (mel[b].max() - mel[b].min())
        ref = norm.reshape(102, 2, 5, 2).mean(axis=(1, 3))  # each layout cell = a 2x2 block
        np.testing.assert_allclose(got[b], ref, rtol=1e-5, atol=1e-6)
    assert layout_to_latent_map(torch.from_numpy(got), 256, 16).shape == (2, 1, 256, 16)


@pytest.mark.parametrize("change", [
    {"decoder_cls": "last"}, {"decoder_attention": "sa"}, {"decoder_attention": "wa"},
    {"patch_cross_attention": False}, {"layout_kind": "odf"}, {"layout_kind": "onset"},
])
def test_every_table_variant_builds_and_samples(change):
    cfg = tiny(**change)
    pipe = pipeline(cfg)
    cls, patch = features(cfg, batch=1)
    out = pipe(cls, patch, steps=1, decode=False, return_layout=True)
    assert out.latents.shape == (1, 4, 128, 16)
    assert out.layout.shape == (1, 102, 5 if cfg.layout_kind == "mel" else 1)


@pytest.fixture(scope="module")
def small_train_data(tmp_path_factory):
    from tiva_bench import synthetic

    root = tmp_path_factory.mktemp("train")
    synthetic.generate(root, {"train": 8}, seed=9, workers=1)
    return root / "train"


def test_a_short_training_run_lowers_the_loss_and_resumes_exactly(small_train_data, tmp_path):
    import csv

    from tiva_bench.train import TrainConfig, train

    tc = TrainConfig(preset="tiva-tiny", stage="layout", data=str(small_train_data), out=str(tmp_path / "run"),
                     steps={"layout": 80, "generator": 1, "joint": 1}, batch_size={"layout": 8, "generator": 2, "joint": 2},
                     checkpoint_every=40, cache_dir=str(tmp_path / "cache"))
    train(tc, log=lambda m: None)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "run" / "losses.csv"))]
    assert len(losses) == 80 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

    def interrupt_after(n):
        def progress(it, total):
            for k, x in enumerate(it):
                if k == n:
                    raise KeyboardInterrupt
                yield x
        return progress

    tc2 = dataclasses.replace(tc, out=str(tmp_path / "run2"))
    with pytest.raises(KeyboardInterrupt):
        train(tc2, progress=interrupt_after(45), log=lambda m: None)  # dies after the step-40 checkpoint
    assert (tmp_path / "run2" / "train_state.pt").exists()
    messages = []
    train(tc2, log=messages.append)
    assert any("resuming layout at step 40" in m for m in messages)
    # steps 41-45 ran twice; the log has each step once
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "run2" / "losses.csv"))]
    assert steps == list(range(1, 81))
    a = TiVAModel.load(tmp_path / "run" / "checkpoint.safetensors").state_dict()
    b = TiVAModel.load(tmp_path / "run2" / "checkpoint.safetensors").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a finished run is not retrained
    messages.clear()
    train(tc2, log=messages.append)
    assert any("already fully trained" in m for m in messages)


def test_generator_stage_lowers_the_epsilon_loss(small_train_data, tmp_path):
    import csv

    from tiva_bench.train import TrainConfig, train

    tc = TrainConfig(preset="tiva-tiny", stage="generator", data=str(small_train_data), out=str(tmp_path / "g"),
                     steps={"layout": 1, "generator": 40, "joint": 1}, batch_size={"layout": 2, "generator": 8, "joint": 2},
                     lr={"layout": 1e-3, "generator": 2e-3, "joint": 1e-4}, cache_dir=str(tmp_path / "cache"))
    train(tc, log=lambda m: None)
    eps = [float(r["eps"]) for r in csv.DictReader(open(tmp_path / "g" / "losses.csv"))]
    assert np.mean(eps[-8:]) < np.mean(eps[:8])


def test_ddp_on_two_cpu_processes_keeps_ranks_in_sync(small_train_data, tmp_path):
    env = {**os.environ, "TIVA_BENCH_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m", "tiva_bench", "train",
           "--preset", "tiva-tiny", "--stage", "layout", "--data", str(small_train_data), "--out", str(tmp_path / "ddp"),
           "--steps", "6", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sums = [float((tmp_path / "ddp" / f"rank{r}_param_sum.txt").read_text()) for r in (0, 1)]
    assert sums[0] == sums[1]
    assert (tmp_path / "ddp" / "checkpoint.safetensors").exists()
