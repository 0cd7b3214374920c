"""The TiVA model against the paper: joint-stage loss (Eq. 10), AudioLDM2's front-end, patch-level
cross-attention, Eq. 4's output layer, the samplers, CLIP layer numbering, and the loading of
checkpoints saved before these options existed.

Every reference here is written independently of the code under test (numpy framing and FFT for
the front-end, closed forms for the schedules and the samplers, hand-written formulas for the
losses). Models are randomly initialised: plumbing and maths only, never quality.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tiva_bench.core.errors import ConfigError
from tiva_bench.models.tiva.codec import LogMel, build_codec, normalise_waveform
from tiva_bench.models.tiva.config import LEGACY, TiVAConfig, preset, with_overrides
from tiva_bench.models.tiva.frame_encoder import ThumbnailFrameEncoder
from tiva_bench.models.tiva.layout_predictor import LayoutPredictor
from tiva_bench.models.tiva.losses import StageLoss
from tiva_bench.models.tiva.model import TiVAModel
from tiva_bench.models.tiva.pipeline import SHIPPED, TiVAPipeline, load_pipeline
from tiva_bench.models.tiva.schedulers import make_sampler

REPO = Path(__file__).resolve().parents[1]


def small(**changes) -> TiVAConfig:
    """tiva-tiny with 8 frames and 8 layout steps: fast, same code paths."""
    base = dict(n_frames=8, layout_time=8)
    base.update(changes)
    return dataclasses.replace(preset("tiva-tiny"), **base).validate()


def features(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_layers = len(cfg.cls_layers)
    return (torch.randn(batch, cfg.n_frames, n_layers, cfg.feature_dim, generator=g),
            torch.randn(batch, cfg.n_frames, n_layers, cfg.patch_grid ** 2, cfg.feature_dim, generator=g))


def alphas_cumprod(cfg) -> np.ndarray:
    """AudioLDM's scaled-linear schedule in closed form: betas = linspace(sqrt(b0), sqrt(b1))^2."""
    betas = np.linspace(np.sqrt(cfg.beta_start), np.sqrt(cfg.beta_end), cfg.train_timesteps, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


# ---------------------------------------------------------------- 1. the joint stage's loss (Eq. 10)

@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_joint_stage_loss_is_eq10_by_default_and_the_layout_term_only_on_request(weight):
    cfg = small()
    torch.manual_seed(0)
    model = TiVAModel(cfg)
    cls, patch = features(cfg)
    latent = torch.randn(2, cfg.latent_channels, cfg.latent_time, cfg.latent_freq, generator=torch.Generator().manual_seed(1))
    target_layout = torch.rand(2, cfg.layout_time, cfg.layout_bands, generator=torch.Generator().manual_seed(2))
    batch = {"cls": cls, "patch": patch, "latent": latent, "layout": target_layout}
    module = StageLoss(model, "joint") if weight == 0.0 else StageLoss(model, "joint", weight)
    loss, logs = module(batch, torch.Generator().manual_seed(5))

    # reference: the same random draws, in the order the paper's training step needs them
    gen = torch.Generator().manual_seed(5)
    keep = (torch.rand(2, generator=gen) >= cfg.semantic_dropout).float()
    noise = torch.randn(latent.shape, generator=gen)
    t = torch.randint(0, cfg.train_timesteps, (2,), generator=gen)
    ab = torch.from_numpy(alphas_cumprod(cfg)).float()[t].view(2, 1, 1, 1)
    noisy = ab.sqrt() * latent + (1 - ab).sqrt() * noise
    with torch.no_grad():
        t_v = model.layout(cls, patch)
        s = model.semantic(cls) * keep[:, None, None]
        eps = model.generator(noisy, t, s, model.layout_map(t_v, 2, "cpu"))
    eq10 = float(((eps - noise) ** 2).mean())
    l2 = float(((t_v - target_layout) ** 2).mean())
    assert float(loss) == pytest.approx(eq10 + weight * l2, rel=1e-5, abs=1e-7)
    assert logs["eps"] == pytest.approx(eq10, rel=1e-5) and logs["layout_l2"] == pytest.approx(l2, rel=1e-5)


def test_train_config_default_is_the_papers_joint_loss_and_a_negative_weight_is_refused(tmp_path):
    from tiva_bench.train import TrainConfig, train

    assert TrainConfig().joint_layout_loss_weight == 0.0
    with pytest.raises(ConfigError, match="joint_layout_loss_weight"):
        train(TrainConfig(joint_layout_loss_weight=-1.0, data=str(tmp_path), out=str(tmp_path / "o")), log=lambda m: None)


# ---------------------------------------------------------------- 2. AudioLDM2's front-end

def audioldm2_log_mel_reference(content: np.ndarray, window: int, sr=16000, n_fft=1024, hop=160, n_mels=64) -> np.ndarray:
    """AudioLDM2's training front-end, written with numpy: normalise the decoded audio (zero mean,
    peak 0.5), zero-pad it to the window, reflect-pad (n_fft - hop) / 2, frame without centring,
    periodic Hann, |rfft|, Slaney mel 0-8 kHz, log(max(x, 1e-5)), cut to window / hop frames."""
    import librosa
    import scipy.signal

    x = content.astype(np.float32)
    x = x - np.mean(x)
    x = x / (np.max(np.abs(x)) + 1e-8)
    x = 0.5 * x
    y = np.zeros(window, np.float32)
    y[: len(x)] = x
    side = (n_fft - hop) // 2
    y = np.pad(y, (side, side), mode="reflect")
    n_frames = (len(y) - n_fft) // hop + 1
    win = scipy.signal.get_window("hann", n_fft, fftbins=True)
    frames = np.stack([y[k * hop: k * hop + n_fft] * win for k in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames, axis=1))
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=8000.0)
    return np.log(np.maximum(magnitude @ basis.T, 1e-5))[: window // hop]


def test_paper_preset_applies_audioldm2_preprocessing_exactly():
    cfg = preset("tiva-paper")
    assert (cfg.waveform_norm, cfg.stft_padding) == ("audioldm2", "audioldm2")
    rng = np.random.default_rng(0)
    n_content, window = 16000 * 10, int(round(cfg.window_s * cfg.sample_rate))  # a 10-s clip in the 10.24-s window
    time = np.arange(n_content) / 16000
    content = (0.05 + 0.2 * np.sin(2 * np.pi * 440 * time) * (time % 1 < 0.3) + 0.01 * rng.standard_normal(n_content)).astype(np.float32)
    wav = np.zeros(window, np.float32)
    wav[:n_content] = content
    codec = build_codec(cfg, random_init=True)
    got = codec.log_mel(torch.from_numpy(wav)[None])[0].numpy()
    ref = audioldm2_log_mel_reference(content, window)
    assert got.shape == ref.shape == (1024, 64)
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=0)
    # and it differs from the raw-level centred front-end by far more than that
    raw = LogMel(16000, 1024, 160, 64, "center")(torch.from_numpy(wav)[None])[0].numpy()
    assert np.abs(raw - ref).max() > 0.5


def test_waveform_normalisation_reference_cases():
    x = torch.tensor([[1.0, 3.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    got = normalise_waveform(x, "audioldm2")
    centred = np.array([0.0, 2.0, -2.0])  # mean 1 over the three decoded samples
    np.testing.assert_allclose(got[0].numpy(), np.r_[0.5 * centred / (2.0 + 1e-8), 0.0, 0.0], atol=1e-7)
    assert torch.equal(got[1], torch.zeros(5))  # silence stays silence
    assert torch.equal(normalise_waveform(x, "none"), x)


def test_tiny_preset_and_older_checkpoints_keep_the_raw_level_centred_front_end():
    assert (preset("tiva-tiny").waveform_norm, preset("tiva-tiny").stft_padding) == ("none", "center")
    assert (LEGACY["waveform_norm"], LEGACY["stft_padding"]) == ("none", "center")


# ---------------------------------------------------------------- 3. patch-level cross-attention

def _cross_attention_keys(predictor: LayoutPredictor, cls, patch) -> list[tuple]:
    seen = []

    def hook(module, args, kwargs, output):
        seen.append(tuple(args[1].shape))

    handles = [block["ca"].attn.register_forward_hook(hook, with_kwargs=True) for block in predictor.decoder]
    with torch.no_grad():
        predictor(cls, patch)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("grid", [1, 2])
def test_cross_attention_sees_one_token_per_grid_cell_and_frame(grid):
    cfg = small(patch_grid=grid)
    torch.manual_seed(0)
    model = TiVAModel(cfg)
    cls, patch = features(cfg)
    keys = _cross_attention_keys(model.layout, cls, patch)
    assert keys and all(k == (2, cfg.n_frames * grid * grid, cfg.predictor_dim) for k in keys)


def test_with_a_grid_the_layout_depends_on_where_in_the_frame_things_are():
    """Swapping two cells keeps the per-frame mean (all a grid of 1 sees) but moves the detail."""
    cls, patch = features(small(patch_grid=2), batch=1)
    swapped = patch.clone()
    swapped[:, :, :, [0, 3]] = patch[:, :, :, [3, 0]]
    for grid, should_change in ((2, True), (1, False)):
        cfg = small(patch_grid=grid)
        torch.manual_seed(0)
        predictor = TiVAModel(cfg).layout
        with torch.no_grad():
            a, b = predictor(cls, patch), predictor(cls, swapped)
        assert (not torch.allclose(a, b, atol=1e-6)) == should_change, grid


def test_thumbnail_patch_tokens_are_the_thumbnail_of_each_cell():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    cls, patch = ThumbnailFrameEncoder(patch_grid=2).encode_frames(frames)
    assert cls.shape == (2, 3, 48) and patch.shape == (2, 3, 4, 48)
    x = frames.astype(np.float64) / 255.0
    for i in range(2):
        for j in range(2):
            region = x[:, 32 * i: 32 * i + 32, 32 * j: 32 * j + 32]            # N,32,32,3
            blocks = region.reshape(2, 4, 8, 4, 8, 3)
            mean, peak = blocks.mean(axis=(2, 4)), blocks.max(axis=(2, 4))      # N,4,4,3
            for layer, grid in enumerate((mean, peak, peak - mean)):
                ref = grid.transpose(0, 3, 1, 2).reshape(2, 48)                # (channel, y, x) order
                np.testing.assert_allclose(patch[:, layer, 2 * i + j].numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(ThumbnailFrameEncoder(1).encode_frames(frames)[1][:, :, 0].numpy(), cls.numpy())


def test_cross_attention_window_masks_far_frames():
    cfg = small(cross_attention_window=0, decoder_attention="wa", window=0, decoder_layers=1, patch_grid=1, layout_head="per-step")
    torch.manual_seed(0)
    predictor = TiVAModel(cfg).layout
    cls, patch = features(cfg, batch=1)
    changed = patch.clone()
    changed[:, -1] += 5.0  # only the last frame's patches (the encoder window is 3 frames)
    with torch.no_grad():
        a, b = predictor(cls, patch), predictor(cls, changed)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6) and not torch.allclose(a[:, -1], b[:, -1])


# ---------------------------------------------------------------- 4. Eq. 4's output layer

def test_concat_head_is_one_linear_over_all_frames_decoder_outputs():
    cfg = small(layout_head="concat")
    torch.manual_seed(0)
    predictor = TiVAModel(cfg).layout
    linear = predictor.out[2]
    d, t, m, c = cfg.predictor_dim, cfg.n_frames, cfg.layout_time, cfg.layout_bands
    assert tuple(linear.weight.shape) == (m * c, t * d)
    captured = {}
    predictor.out[0].register_forward_hook(lambda mod, args, out: captured.setdefault("normed", out))
    cls, patch = features(cfg)
    with torch.no_grad():
        got = predictor(cls, patch)
        ref = (captured["normed"].reshape(2, t * d) @ linear.weight.T + linear.bias).reshape(2, m, c)
    torch.testing.assert_close(got, ref)


def test_concat_head_lets_every_layout_step_draw_on_every_frame_and_any_m():
    common = dict(decoder_attention="wa", window=0, decoder_layers=1, patch_cross_attention=False)
    for head, first_step_sees_last_frame in (("concat", True), ("per-step", False)):
        cfg = small(layout_head=head, **common)
        torch.manual_seed(0)
        predictor = TiVAModel(cfg).layout
        cls, patch = features(cfg, batch=1)
        changed = cls.clone()
        changed[:, -1] += 5.0
        with torch.no_grad():
            moved = not torch.allclose(predictor(cls, patch)[:, 0], predictor(changed, patch)[:, 0], atol=1e-6)
        assert moved == first_step_sees_last_frame, head
    fine = small(layout_head="concat", layout_time=1020, layout_bands=64)
    torch.manual_seed(0)
    assert TiVAModel(fine).layout(*features(fine, batch=1)).shape == (1, 1020, 64)


# ---------------------------------------------------------------- 5. samplers

@pytest.mark.parametrize("sampler", ["dpmsolver", "dpmsolver++"])
def test_both_solvers_are_exact_for_a_point_mass(sampler):
    """Data = one point c: the true noise prediction is (x - sqrt(ab) c) / sqrt(1 - ab), constant
    along the probability-flow ODE, so both solvers must land on sqrt(ab_end) c + sqrt(1 - ab_end) z
    (ab_end = 1 for DPM-Solver++ ending at zero noise, ab[0] for DPM-Solver ending at the schedule's
    smallest noise level)."""
    cfg = dataclasses.replace(preset("tiva-tiny"), sampler=sampler)
    scheduler = make_sampler(cfg)
    assert scheduler.config.algorithm_type == sampler and scheduler.config.solver_order == 2
    ab = alphas_cumprod(cfg)
    c = torch.tensor([0.7, -1.2, 0.1], dtype=torch.float64)
    scheduler.set_timesteps(25)
    x = torch.tensor([0.3, -0.5, 1.4], dtype=torch.float64)
    t0 = int(scheduler.timesteps[0])
    z = (x - np.sqrt(ab[t0]) * c) / np.sqrt(1 - ab[t0])
    for t in scheduler.timesteps:
        a = ab[int(t)]
        eps = (x - np.sqrt(a) * c) / np.sqrt(1 - a)
        x = scheduler.step(eps, t, x).prev_sample
    end = ab[0] if sampler == "dpmsolver" else 1.0
    torch.testing.assert_close(x, np.sqrt(end) * c + np.sqrt(1 - end) * z, atol=1e-4, rtol=0)


def test_paper_preset_samples_with_dpm_solver_and_older_checkpoints_with_dpm_solver_pp():
    assert preset("tiva-paper").sampler == "dpmsolver" and LEGACY["sampler"] == "dpmsolver++"


# ---------------------------------------------------------------- 6. CLIP layer numbering

def test_clip_layer_numbering_maps_layers_to_blocks():
    assert preset("tiva-paper").clip_blocks() == (4, 8, 11)
    assert with_overrides(preset("tiva-paper"), {"clip_layer_numbering": "1-based"}).clip_blocks() == (3, 7, 10)


# ---------------------------------------------------------------- 7. saving, loading, older checkpoints

def test_shipped_checkpoints_load_with_their_training_behaviour_and_outputs():
    """Reference values: the same call on the code that trained the shipped checkpoints
    (commit 4899331, before the options existed): 4 steps, seed 7, features from seed 123."""
    expected = {"tiva-tiny": ([3.16816, 6.60583, 1.94084, 4.91541], [0.85238, 0.72946, 0.93559, 0.37002, 0.0823]),
                "tiva-tiny-nolayout": ([2.59486, 5.60709, 1.32594, 3.7687], None)}
    for name, (latents, layout) in expected.items():
        pipe = load_pipeline(preset_name=name)
        cfg = pipe.cfg
        assert (cfg.patch_grid, cfg.layout_head, cfg.sampler, cfg.waveform_norm, cfg.stft_padding) == (1, "per-step", "dpmsolver++", "none", "center")
        cls = torch.rand(1, 102, 3, 48, generator=torch.Generator().manual_seed(123))
        out = pipe(cls, cls.unsqueeze(3).clone(), steps=4, seed=7, decode=False, return_layout=True)
        np.testing.assert_allclose(out.latents[0, :, 60, 8].numpy(), latents, atol=2e-4)
        if layout is not None:
            np.testing.assert_allclose(out.layout[0, 50].numpy(), layout, atol=2e-4)


def test_save_pretrained_round_trip_and_both_forms_load_everywhere(tmp_path):
    cfg = small()
    torch.manual_seed(0)
    model = TiVAModel(cfg)
    folder = model.save_pretrained(tmp_path / "tiva", extra={"note": "x"})
    assert json.loads((folder / "config.json").read_text())["_class_name"] == "TiVAModel"
    loaded = TiVAModel.from_pretrained(folder)
    assert loaded.cfg == cfg
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # the shipped single file loads through from_pretrained too, and a folder through load_pipeline
    assert TiVAModel.from_pretrained(SHIPPED["tiva-tiny"]).cfg.layout_head == "per-step"
    TiVAModel.load(SHIPPED["tiva-tiny"]).save_pretrained(tmp_path / "shipped")
    pipe = load_pipeline(tmp_path / "shipped")
    assert isinstance(pipe, TiVAPipeline) and pipe.cfg == TiVAModel.load(SHIPPED["tiva-tiny"]).cfg


def test_a_config_saved_without_the_new_fields_reads_with_legacy_values():
    saved = preset("tiva-paper").to_dict()
    for key in LEGACY:
        saved.pop(key)
    cfg = TiVAConfig.from_dict(saved)
    assert all(getattr(cfg, key) == value for key, value in LEGACY.items())


def test_overrides_are_typed_and_checked():
    cfg = with_overrides(preset("tiva-tiny"), {"patch_grid": "4", "layout_clamp": "true", "cls_layers": "0,1,2", "layout_head": "per-step"})
    assert (cfg.patch_grid, cfg.layout_clamp, cfg.cls_layers, cfg.layout_head) == (4, True, (0, 1, 2), "per-step")
    with pytest.raises(ConfigError, match="patch_grd"):
        with_overrides(cfg, {"patch_grd": "2"})
    with pytest.raises(ConfigError, match="sampler"):
        with_overrides(cfg, {"sampler": "ddim"})


def test_layout_clamp_limits_the_predicted_layout_fed_to_g():
    cfg = small(layout_clamp=True)
    model = TiVAModel(cfg)
    wild = torch.full((1, cfg.layout_time, cfg.layout_bands), 3.0)
    assert float(model.layout_map(wild, 1, "cpu").max()) == pytest.approx(1.0)
    assert float(TiVAModel(small()).layout_map(wild, 1, "cpu").max()) == pytest.approx(3.0)


# ---------------------------------------------------------------- 8. training: damaged state, loss rows

def _cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tiva_bench", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_train_on_a_damaged_train_state_exits_2_with_one_line(tmp_path):
    out = tmp_path / "run"
    TiVAModel(small()).save(out / "checkpoint.safetensors", extra={"stage": "layout", "step": 5})
    (out / "train_state.pt").write_bytes(b"PK\x03\x04 this is not a torch file")
    proc = _cli("train", "--data", str(tmp_path), "--out", str(out), "-q")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "train_state.pt" in lines[0] and "delete" in lines[0]
    bad = _cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "x"), "--set", "patch_grd=2", "-q")
    assert bad.returncode == 2 and "patch_grid" in bad.stderr


def test_resume_drops_the_loss_rows_of_steps_done_again(tmp_path):
    from tiva_bench.train import LOSS_COLUMNS, _append_loss, _drop_rows_after

    path = tmp_path / "losses.csv"
    for stage, steps in (("layout", range(1, 4)), ("generator", range(1, 4)), ("joint", range(1, 8))):
        for step in steps:
            _append_loss(path, stage, step, 1.0, 1e-3, 0.0, {"eps": 1.0})
    _drop_rows_after(path, "joint", 5)   # the checkpoint was at joint step 5; steps 6 and 7 run again
    rows = list(csv.reader(open(path, newline="")))
    assert rows[0] == LOSS_COLUMNS
    assert [(r[0], int(r[1])) for r in rows[1:]] == [("layout", 1), ("layout", 2), ("layout", 3), ("generator", 1), ("generator", 2),
                                                     ("generator", 3)] + [("joint", k) for k in range(1, 6)]


# ---------------------------------------------------------------- 9. G from a pretrained UNet

def test_g_initialised_from_a_pretrained_unet_first_behaves_exactly_like_it():
    from diffusers import UNet2DConditionModel

    from tiva_bench.models.tiva.generator import init_from_unet

    cfg = small()
    g = TiVAModel(cfg).generator
    unet_config = {k: v for k, v in g.unet.config.items() if not k.startswith("_")}
    unet_config.update(in_channels=cfg.latent_channels, out_channels=cfg.latent_channels)
    torch.manual_seed(3)
    pretrained = UNet2DConditionModel(**unet_config)
    report = init_from_unet(g, pretrained.state_dict())
    assert not report["skipped"]
    x = torch.randn(2, cfg.latent_channels, cfg.latent_time, cfg.latent_freq)
    s = torch.randn(2, cfg.n_frames, cfg.semantic_dim)
    t = torch.tensor([10, 500])
    with torch.no_grad():
        ref = pretrained(x, t, encoder_hidden_states=s).sample
        got = g(x, t, s, torch.rand(2, 1, cfg.latent_time, cfg.latent_freq))  # any layout: its channel starts at zero
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
