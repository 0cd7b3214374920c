"""Training the TiVA model: feature preparation, the paper's three stages, checkpoints, resume, DDP.

The model's side (what each stage's loss is and which parameters it trains) lives in
``tiva_bench.models.tiva.losses`` and ``tiva_bench.models.tiva.stages``: ``layout`` (T, L2 on
t_a), ``generator`` (S + G, epsilon loss on ground-truth layouts), ``joint`` (S + T + G, T(v) fed
to G, the epsilon loss alone as in Eq. 10, plus ``joint_layout_loss_weight`` x L2 when that
option is above 0), ``all`` (the three in order). This module only orchestrates: data, features,
the loop, checkpoints, resume and DDP.

Every ``checkpoint_every`` steps the model is written to ``OUT/checkpoint.safetensors`` (config in
its metadata, with this run's ``TrainConfig``) and the optimiser to ``OUT/train_state.pt``;
rerunning the same command resumes from there. Losses go to ``OUT/losses.csv``; on resume, rows of
steps after the checkpoint (done again) are dropped first, so every step has one row. Batches and timesteps come from generators seeded by
(seed, stage, step, rank), so a resumed run continues exactly. Under ``torchrun`` the trainable
parts are wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import csv
import io
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

from tiva_bench.core.cache import FeatureCache, file_digest
from tiva_bench.core.data import VideoItem, folder_items, load_av_window
from tiva_bench.core.errors import ConfigError, InputError, TivaBenchError
from tiva_bench.core.files import atomic_write_text
from tiva_bench.models.tiva.codec import build_codec
from tiva_bench.models.tiva.config import TiVAConfig, preset, with_overrides
from tiva_bench.models.tiva.frame_encoder import frame_encoder_for
from tiva_bench.models.tiva.generator import init_from_unet
from tiva_bench.models.tiva.layout import extract_layout
from tiva_bench.models.tiva.losses import STAGES, StageLoss
from tiva_bench.models.tiva.model import TiVAModel, checkpoint_extra
from tiva_bench.models.tiva.stages import stages_for, trainable
from tiva_bench.core.weights import weights_sha256

LOSS_COLUMNS = ["stage", "step", "loss", "eps", "layout_l2", "lr", "seconds"]


@dataclass
class TrainConfig:
    preset: str = "tiva-tiny"
    model: dict = field(default_factory=dict)  # TiVAConfig fields overriding the preset's (a new model only)
    stage: str = "all"
    data: str = ""
    out: str = "runs/train"
    init: str | None = None                 # start from this checkpoint (e.g. a layout-stage one)
    init_unet: str | None = None            # a new model's G starts from this pretrained UNet (safetensors, diffusers keys), e.g. AudioLDM2's
    init_unet_contexts: int = 2             # cross-attention contexts per layer in that UNet (AudioLDM2: 2); G takes the first
    steps: dict = field(default_factory=lambda: {"layout": 1500, "generator": 1500, "joint": 200})
    batch_size: dict = field(default_factory=lambda: {"layout": 32, "generator": 16, "joint": 16})
    lr: dict = field(default_factory=lambda: {"layout": 1e-3, "generator": 5e-4, "joint": 1e-4})
    joint_layout_loss_weight: float = 0.0   # joint stage: Eq. 10 is the epsilon loss alone; > 0 adds this x L2(T(v), t_a)
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "cpu"
    cache_dir: str | None = None
    threads: int = 0


# ---------------------------------------------------------------- features

def feature_settings(cfg: TiVAConfig, frame_encoder=None) -> dict:
    """What the cached training features depend on (the cache key): the config's front-end fields
    and, for CLIP, the SHA-256 of the encoder's weights file."""
    keys = ("frame_encoder", "fps", "window_s", "n_frames", "cls_layers", "codec", "sample_rate", "n_fft", "hop_length", "n_mels",
            "latent_channels", "latent_time", "latent_freq", "latent_scale", "latent_shift", "latent_unshuffle", "layout_kind", "layout_time", "layout_bands",
            "clip_layer_numbering", "patch_grid", "waveform_norm", "stft_padding", "latent_sample")
    settings = {k: getattr(cfg, k) for k in keys}
    weights = getattr(getattr(frame_encoder, "encoder", None), "checkpoint", None)
    if weights and weights != "random-init":
        settings["frame_encoder_weights"] = weights_sha256(weights)
    return settings


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
    if not (math.isfinite(tc.joint_layout_loss_weight) and tc.joint_layout_loss_weight >= 0):
        raise ConfigError(f"joint_layout_loss_weight must be a finite number >= 0, got {tc.joint_layout_loss_weight}",
                          "use 0 for the paper's joint loss (Eq. 10), e.g. 1.0 to also pull T(v) towards t_a")
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
        resume = _load_state(state_path)
        log(f"resuming {resume['stage']} at step {resume['step']} from {ckpt_path}")
    elif tc.init:
        if tc.model:
            raise ConfigError("model settings (--set) apply to a new model, not to one started from --init",
                              "drop --set, or train from the preset without --init")
        model = TiVAModel.load(tc.init)
    else:
        torch.manual_seed(tc.seed)
        model = TiVAModel(with_overrides(preset(tc.preset), tc.model))
        if tc.init_unet:
            _init_unet(model, tc, log)
    cfg = model.cfg
    model.to(device)

    items = folder_items(tc.data)
    if not items:
        raise TivaBenchError(f"no videos found in {tc.data}", "point --data at a folder of videos, e.g. data/synth/train")
    encoder = frame_encoder_for(cfg)
    cache = FeatureCache("tiva_train", feature_settings(cfg, encoder), tc.cache_dir)
    files, skipped = prepare_features(items, cfg, encoder, build_codec(cfg), cache, progress if rank == 0 else None)
    for s in skipped[:10]:
        log(f"skipped {s['clip']}: {s['reason']}")
    bank = FeatureBank(files)
    log(f"{len(bank)} clips ({len(skipped)} skipped); stages {stages_for(cfg, tc.stage)}")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "train_config.json", json.dumps(asdict(tc), indent=1))
        if resume is not None:
            _drop_rows_after(loss_path, resume["stage"], int(resume["step"]))

    started = time.time()
    for stage in stages_for(cfg, tc.stage):
        if resume is not None and STAGES.index(stage) < STAGES.index(resume["stage"]):
            continue
        params = trainable(model, stage)
        loss_module = StageLoss(model, stage, tc.joint_layout_loss_weight)
        wrapped = loss_module
        if world > 1:
            wrapped = nn.parallel.DistributedDataParallel(loss_module, find_unused_parameters=True)
        opt = torch.optim.AdamW(params, lr=tc.lr[stage], weight_decay=1e-4)
        total = tc.steps[stage]
        start = 0
        if resume is not None and resume["stage"] == stage:
            try:
                opt.load_state_dict(resume["optimizer"])
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise TivaBenchError(f"{state_path} does not fit the checkpoint's {stage} stage ({type(exc).__name__})",
                                     f"delete {state_path} to restart the stage from the last checkpoint's weights, or use another --out") from None
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


def _init_unet(model: TiVAModel, tc: TrainConfig, log) -> None:
    from safetensors.torch import load_file

    path = Path(tc.init_unet)
    if not path.is_file():
        raise ConfigError(f"--init-unet {path} is not a file", "pass a UNet's diffusion_pytorch_model.safetensors (e.g. AudioLDM2's unet/)")
    try:
        source = load_file(str(path))
    except Exception as exc:
        raise ConfigError(f"--init-unet {path} is not a safetensors file ({type(exc).__name__})") from None
    report = init_from_unet(model.generator, source, tc.init_unet_contexts)
    total = len(report["copied"]) + len(report["skipped"])
    if not report["copied"]:
        raise ConfigError(f"no tensor of {path} fits G", "set G's sizes to that UNet's (--set unet_channels=... etc., docs/MODEL.md)")
    log(f"G initialised from {path}: {len(report['copied'])} of {total} tensors copied; left as initialised: {report['skipped'][:5]}")


def _load_state(path: Path) -> dict:
    """The optimiser state written by ``_save``; a damaged file is a usage error with the fix."""
    fix = f"delete {path} to restart the interrupted stage from the last checkpoint's weights with a fresh optimiser, or use another --out"
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for damaged pickles/zips
        raise TivaBenchError(f"{path} is damaged and cannot be read ({type(exc).__name__})", fix) from None
    if not isinstance(state, dict) or not {"stage", "step", "optimizer"} <= set(state) or state["stage"] not in STAGES:
        raise TivaBenchError(f"{path} is not a tiva-bench training state", fix)
    return state


def _drop_rows_after(path: Path, stage: str, step: int) -> None:
    """Keep the rows of ``losses.csv`` up to (``stage``, ``step``): the steps after it run again."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0] != LOSS_COLUMNS:
        return
    limit = (STAGES.index(stage), step)

    def keep(row) -> bool:
        try:
            return (STAGES.index(row[0]), int(row[1])) <= limit
        except (ValueError, IndexError):
            return False

    kept = [rows[0]] + [r for r in rows[1:] if keep(r)]
    if len(kept) != len(rows):
        buffer = io.StringIO()
        csv.writer(buffer).writerows(kept)
        atomic_write_text(path, buffer.getvalue())


def _append_loss(path: Path, stage: str, step: int, loss: float, lr: float, seconds: float, logs: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(LOSS_COLUMNS)
        w.writerow([stage, step, f"{loss:.6g}", f"{logs.get('eps', ''):.6g}" if "eps" in logs else "", f"{logs.get('layout_l2'):.6g}" if "layout_l2" in logs else "", f"{lr:.3g}", f"{seconds:.1f}"])


def _save(model, opt, stage, step, ckpt_path: Path, state_path: Path | None, tc: TrainConfig) -> None:
    model.save(ckpt_path, extra={"stage": stage, "step": step, "seed": tc.seed, "data": tc.data, "preset": tc.preset, "train_config": asdict(tc)})
    if state_path is not None and opt is not None:
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save({"stage": stage, "step": step, "optimizer": opt.state_dict()}, tmp)
        tmp.replace(state_path)
    elif state_path is None and stage == "done":
        (ckpt_path.parent / "train_state.pt").unlink(missing_ok=True)
