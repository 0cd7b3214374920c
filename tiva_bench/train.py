"""Training the TiVA model: feature preparation, the paper's three stages, checkpoints, resume, DDP.

Stages (TiVA Sec. 3.4):
* ``layout``: the layout predictor T alone, L2 between T(v) and the ground-truth layout t_a;
* ``generator``: S and G with the DDPM epsilon loss, conditioned on ground-truth layouts, with the
  semantic tokens zeroed for ``semantic_dropout`` (10%) of the samples (for guidance);
* ``joint``: S, T and G together with T(v) fed to G: epsilon loss + L2 layout loss (Eq. 10);
* ``all``: the three in order (``generator`` only for a model without layout).

Every ``checkpoint_every`` steps the model is written to ``OUT/checkpoint.safetensors`` (config in
its metadata) and the optimiser to ``OUT/train_state.pt``; rerunning the same command resumes
from there. Losses go to ``OUT/losses.csv``. Batches and timesteps come from generators seeded by
(seed, stage, step, rank), so a resumed run continues exactly. Under ``torchrun`` the trainable
parts are wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tiva_bench.models.tiva.config import TiVAConfig, preset
from tiva_bench.models.tiva.model import TiVAModel
from tiva_bench.models.tiva.pipeline import make_scheduler
from tiva_bench.core.cache import FeatureCache, file_digest
from tiva_bench.core.data import VideoItem, folder_items, load_av_window
from tiva_bench.core.errors import InputError, TivaBenchError
from tiva_bench.models.tiva.model import checkpoint_extra
from tiva_bench.models.tiva.layout import extract_layout
from tiva_bench.models.tiva.frame_encoder import build_frame_encoder
from tiva_bench.models.tiva.codec import build_codec

STAGES = ("layout", "generator", "joint")


@dataclass
class TrainConfig:
    preset: str = "tiva-tiny"
    stage: str = "all"
    data: str = ""
    out: str = "runs/train"
    init: str | None = None                 # start from this checkpoint (e.g. a layout-stage one)
    steps: dict = field(default_factory=lambda: {"layout": 1500, "generator": 1500, "joint": 200})
    batch_size: dict = field(default_factory=lambda: {"layout": 32, "generator": 16, "joint": 16})
    lr: dict = field(default_factory=lambda: {"layout": 1e-3, "generator": 5e-4, "joint": 1e-4})
    layout_loss_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "cpu"
    cache_dir: str | None = None
    threads: int = 0


# ---------------------------------------------------------------- features

def feature_settings(cfg: TiVAConfig) -> dict:
    keys = ("frame_encoder", "fps", "window_s", "n_frames", "cls_layers", "codec", "sample_rate", "n_fft", "hop_length", "n_mels",
            "latent_channels", "latent_time", "latent_freq", "latent_scale", "latent_shift", "latent_unshuffle", "layout_kind", "layout_time", "layout_bands")
    return {k: getattr(cfg, k) for k in keys}


def prepare_features(items: list[VideoItem], cfg: TiVAConfig, frame_encoder, codec, cache: FeatureCache, progress=None) -> tuple[list[Path], list[dict]]:
    """One ``.npz`` per clip with ``cls``, ``patch`` (float16), ``latent`` and ``layout`` (float32).

    Returns the cache files in item order and the skipped clips with reasons.
    """

    files, skipped = [], []
    iterator = progress(items, total=len(items)) if progress else items
    for item in iterator:
        try:
            digest = file_digest(item.path)
            path = cache.path_for(digest)
            if cache.get(digest) is None:
                window = load_av_window(item, cfg.fps, cfg.sample_rate, cfg.window_s)
                cls, patch = frame_encoder.encode_frames(window.frames[: cfg.n_frames])
                with torch.no_grad():
                    wav = torch.from_numpy(window.audio[None])
                    latent = codec.encode(wav)[0]
                    layout = extract_layout(codec.log_mel(wav), cfg.layout_kind, cfg.layout_time, cfg.layout_bands)[0]
                cache.put(digest, {"cls": cls.numpy().astype(np.float16), "patch": patch.numpy().astype(np.float16),
                                   "latent": latent.numpy().astype(np.float32), "layout": layout.numpy().astype(np.float32)})
            files.append(path)
        except (InputError, OSError) as exc:
            skipped.append({"clip": item.key, "reason": getattr(exc, "reason", str(exc))})
    return files, skipped


class FeatureBank:
    """All prepared clips in memory as tensors (small models), indexed by batch."""

    def __init__(self, files: list[Path]):
        rows = [np.load(f) for f in files]
        self.cls = torch.from_numpy(np.stack([r["cls"] for r in rows]).astype(np.float32))
        self.patch = torch.from_numpy(np.stack([r["patch"] for r in rows]).astype(np.float32))
        self.latent = torch.from_numpy(np.stack([r["latent"] for r in rows]))
        self.layout = torch.from_numpy(np.stack([r["layout"] for r in rows]))

    def __len__(self) -> int:
        return self.cls.shape[0]

    def batch(self, idx: torch.Tensor, device) -> dict:
        return {k: getattr(self, k)[idx].to(device) for k in ("cls", "patch", "latent", "layout")}


# ---------------------------------------------------------------- losses

class StageLoss(nn.Module):
    """The loss of one stage as a module (so DDP can wrap it)."""

    def __init__(self, model: TiVAModel, stage: str, layout_weight: float):
        super().__init__()
        self.model, self.stage, self.layout_weight = model, stage, layout_weight
        self.noise_scheduler = make_scheduler(model.cfg, sampler=False)

    def forward(self, batch: dict, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        m, c = self.model, self.model.cfg
        if self.stage == "layout":
            loss = nn.functional.mse_loss(m.layout(batch["cls"], batch["patch"]), batch["layout"])
            return loss, {"layout_l2": loss.item()}
        b = batch["latent"].shape[0]
        device = batch["latent"].device
        s = m.semantic(batch["cls"])
        keep = (torch.rand(b, generator=gen) >= c.semantic_dropout).float().to(device)
        s = s * keep[:, None, None]
        logs = {}
        layout_loss = torch.zeros((), device=device)
        if self.stage == "joint" and c.use_layout:
            layout = m.layout(batch["cls"], batch["patch"])
            layout_loss = nn.functional.mse_loss(layout, batch["layout"])
            logs["layout_l2"] = layout_loss.item()
        else:
            layout = batch["layout"]
        layout_map = m.layout_map(layout, b, device)
        noise = torch.randn(batch["latent"].shape, generator=gen).to(device)
        t = torch.randint(0, c.train_timesteps, (b,), generator=gen).to(device)
        noisy = self.noise_scheduler.add_noise(batch["latent"], noise, t)
        target = noise if c.prediction_type == "epsilon" else self.noise_scheduler.get_velocity(batch["latent"], noise, t)
        eps_loss = nn.functional.mse_loss(m.generator(noisy, t, s, layout_map), target)
        logs["eps"] = eps_loss.item()
        return eps_loss + self.layout_weight * layout_loss, logs


def trainable(model: TiVAModel, stage: str) -> list[nn.Parameter]:
    parts = {"layout": [model.layout], "generator": [model.semantic, model.generator], "joint": [model.semantic, model.layout, model.generator]}[stage]
    if model.lift is not None and stage != "layout":
        parts.append(model.lift)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for part in parts for p in part.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def stages_for(cfg: TiVAConfig, stage: str) -> list[str]:
    if stage == "all":
        return list(STAGES) if cfg.use_layout else ["generator"]
    if stage not in STAGES:
        raise TivaBenchError(f"unknown stage {stage!r}", "use layout, generator, joint or all")
    return [stage]


# ---------------------------------------------------------------- loop

def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("TIVA_BENCH_DDP_BACKEND") != "gloo" else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def train(tc: TrainConfig, progress=None, log=print) -> Path:
    """Run the stages of ``tc``; returns the final checkpoint path."""
    if tc.threads:
        torch.set_num_threads(tc.threads)
    rank, world = _distributed()
    device = torch.device(tc.device if tc.device != "cuda" or world == 1 else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    out = Path(tc.out)
    ckpt_path, state_path, loss_path = out / "checkpoint.safetensors", out / "train_state.pt", out / "losses.csv"
    resume = None
    if ckpt_path.exists() and not state_path.exists():

        if checkpoint_extra(ckpt_path).get("stage") == "done":
            log(f"{ckpt_path} is already fully trained; nothing to do (use another --out to train again)")
            return ckpt_path
    if ckpt_path.exists() and state_path.exists():
        model = TiVAModel.load(ckpt_path)
        resume = torch.load(state_path, weights_only=True)
        log(f"resuming {resume['stage']} at step {resume['step']} from {ckpt_path}")
    elif tc.init:
        model = TiVAModel.load(tc.init)
    else:
        torch.manual_seed(tc.seed)
        model = TiVAModel(preset(tc.preset))
    cfg = model.cfg
    model.to(device)


    items = folder_items(tc.data)
    if not items:
        raise TivaBenchError(f"no videos found in {tc.data}", "point --data at a folder of videos, e.g. data/synth/train")
    cache = FeatureCache("tiva_train", feature_settings(cfg), tc.cache_dir)
    files, skipped = prepare_features(items, cfg, build_frame_encoder(cfg.frame_encoder), build_codec(cfg), cache, progress if rank == 0 else None)
    for s in skipped[:10]:
        log(f"skipped {s['clip']}: {s['reason']}")
    bank = FeatureBank(files)
    log(f"{len(bank)} clips ({len(skipped)} skipped); stages {stages_for(cfg, tc.stage)}")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(tc), indent=1))

    started = time.time()
    for stage in stages_for(cfg, tc.stage):
        if resume is not None and STAGES.index(stage) < STAGES.index(resume["stage"]):
            continue
        params = trainable(model, stage)
        loss_module = StageLoss(model, stage, tc.layout_loss_weight)
        wrapped = loss_module
        if world > 1:
            wrapped = nn.parallel.DistributedDataParallel(loss_module, find_unused_parameters=True)
        opt = torch.optim.AdamW(params, lr=tc.lr[stage], weight_decay=1e-4)
        total = tc.steps[stage]
        start = 0
        if resume is not None and resume["stage"] == stage:
            opt.load_state_dict(resume["optimizer"])
            start = int(resume["step"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
        with warnings.catch_warnings():  # fast-forwarding the schedule on resume, before any optimiser step
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start):
                sched.step()
        steps = range(start, total)
        if progress is not None and rank == 0:
            steps = progress(steps, total=total - start)
        for step in steps:
            gen = torch.Generator("cpu").manual_seed(zlib.crc32(f"{tc.seed}/{stage}/{step}/{rank}".encode()))
            idx = torch.randint(0, len(bank), (tc.batch_size[stage],), generator=gen)
            loss, logs = wrapped(bank.batch(idx, device), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if rank == 0:
                _append_loss(loss_path, stage, step + 1, loss.item(), sched.get_last_lr()[0], time.time() - started, logs)
                if (step + 1) % tc.checkpoint_every == 0 or step + 1 == total:
                    _save(model, opt, stage, step + 1, ckpt_path, state_path, tc)
        resume = None
    if world > 1:
        digest = sum(float(p.double().sum()) for p in model.parameters())
        (out / f"rank{rank}_param_sum.txt").write_text(repr(digest))
        torch.distributed.barrier()
    if rank == 0:
        _save(model, None, "done", 0, ckpt_path, None, tc)
    return ckpt_path


def _append_loss(path: Path, stage: str, step: int, loss: float, lr: float, seconds: float, logs: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["stage", "step", "loss", "eps", "layout_l2", "lr", "seconds"])
        w.writerow([stage, step, f"{loss:.6g}", f"{logs.get('eps', ''):.6g}" if "eps" in logs else "", f"{logs.get('layout_l2'):.6g}" if "layout_l2" in logs else "", f"{lr:.3g}", f"{seconds:.1f}"])


def _save(model, opt, stage, step, ckpt_path: Path, state_path: Path | None, tc: TrainConfig) -> None:
    model.save(ckpt_path, extra={"stage": stage, "step": step, "seed": tc.seed, "data": tc.data, "preset": tc.preset})
    if state_path is not None and opt is not None:
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save({"stage": stage, "step": step, "optimizer": opt.state_dict()}, tmp)
        tmp.replace(state_path)
    elif state_path is None and stage == "done":
        (ckpt_path.parent / "train_state.pt").unlink(missing_ok=True)
