"""TiVAPipeline: video features -> semantic tokens + layout -> second-order DPM-Solver sampling
(``cfg.sampler``: the paper's DPM-Solver or DPM-Solver++) with classifier-free guidance on the
semantics -> latents -> 16-kHz waveforms.

How the UNet runs (precision, compilation, ...) is the pipeline's ``settings``
(``inference.InferenceSettings``): by default fast (bf16, compiled) for the paper-sized model on a
GPU and exact (float32, eager) otherwise; ``inference_record()`` says what was used.
"""

from __future__ import annotations

import importlib.resources

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tiva_bench.core.errors import TivaBenchError
from tiva_bench.models.tiva.codec import build_codec
from tiva_bench.models.tiva.config import preset
from tiva_bench.models.tiva.frame_encoder import frame_encoder_for
from tiva_bench.models.tiva.inference import Denoiser, InferenceSettings, default_settings, resolve_settings
from tiva_bench.models.tiva.model import TiVAModel
from tiva_bench.models.tiva.schedulers import make_sampler


@dataclass
class TiVAOutput:
    """``waveforms`` ``(B, n)`` float32 at 16 kHz (None with ``decode=False``); ``latents``;
    ``layout`` ``(B, M, C)`` used (predicted or given), when asked for."""

    waveforms: np.ndarray | None
    latents: torch.Tensor
    layout: torch.Tensor | None


class TiVAPipeline:
    """``settings``: how the UNet runs (None: ``default_settings(model.cfg, device)``)."""

    def __init__(self, model: TiVAModel, codec, frame_encoder=None, device: str = "cpu", settings: InferenceSettings | None = None):
        self.model = model.eval()
        self.codec = codec
        self.frame_encoder = frame_encoder
        self.device = torch.device(device)
        self.model.to(self.device)
        self.codec.to(self.device)
        bounds = None
        if hasattr(codec, "latent_bounds"):  # symmetric clip of data predictions at the latent's largest magnitude
            limit = max(abs(v) for v in codec.latent_bounds())
            bounds = (-limit, limit)
        self.scheduler = make_sampler(model.cfg, bounds=bounds)
        self.settings = settings or default_settings(model.cfg, self.device)
        self.denoiser = Denoiser(model.generator, self.settings, self.device)

    def inference_record(self) -> dict:
        """The settings used, for a run's provenance: the settings' fields, and ``compile_fallback``
        (why compilation was abandoned, or None) and ``compiled_batches`` when compiling."""
        record = self.settings.to_dict()
        if self.settings.compile != "off":
            record.update(compile_fallback=self.denoiser.fallback, compiled_batches=sorted(self.denoiser.compiled_batches))
        return record

    @property
    def cfg(self):
        return self.model.cfg

    def encode_frames(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """A list of ``(T, H, W, 3)`` uint8 frame arrays -> ``cls`` ``(B, T, L, D)``, ``patch`` ``(B, T, L, G, D)``."""
        if self.frame_encoder is None:
            raise ValueError("this pipeline has no frame encoder; pass features instead")
        outs = [self.frame_encoder.encode_frames(f) for f in frames]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

    def _check(self, cls, patch, steps, guidance):
        c = self.cfg
        if cls.dim() != 4 or patch.dim() != 5:
            raise ValueError(f"expected cls (B,T,L,D) and patch (B,T,L,G,D), got {tuple(cls.shape)} and {tuple(patch.shape)}")
        if cls.shape[1] != c.n_frames or cls.shape[-1] != c.feature_dim or cls.shape[2] != len(c.cls_layers):
            raise ValueError(f"features must have {c.n_frames} frames x {len(c.cls_layers)} layers x {c.feature_dim}, got {tuple(cls.shape)}")
        if steps < 1 or guidance < 0:
            raise ValueError("steps must be >= 1 and guidance >= 0")

    @torch.no_grad()
    def __call__(self, cls: torch.Tensor, patch: torch.Tensor, *, seed: int | None = 0, generator: torch.Generator | list | None = None,
                 steps: int | None = None, guidance: float | None = None, use_layout: bool | None = None, use_semantics: bool = True,
                 layout: torch.Tensor | None = None, return_layout: bool = False, decode: bool = True, batch_size: int = 16) -> TiVAOutput:
        """Generate audio for a batch of videos given as frame-encoder features.

        ``layout``: a ground-truth layout ``(B, M, C)`` to use instead of the predicted one.
        ``use_layout`` / ``use_semantics``: switch either condition off (ablations). ``guidance``
        1 runs the conditional branch alone. Noise comes from ``generator`` (one, or a list with
        one per sample so that a clip's audio does not depend on the batch it is in), or from a
        CPU generator seeded with ``seed`` (the same seed gives the same audio on any device).
        """
        c = self.cfg
        steps = steps or c.steps
        guidance = c.guidance if guidance is None else guidance
        self._check(cls, patch, steps, guidance)
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(0 if seed is None else seed)
        outs = []
        for start in range(0, cls.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            gen = generator[sl] if isinstance(generator, list) else generator
            outs.append(self._generate(cls[sl].to(self.device).float(), patch[sl].to(self.device).float(), gen, steps, guidance,
                                       use_layout, use_semantics, None if layout is None else layout[sl].to(self.device).float()))
        latents = torch.cat([o[0] for o in outs])
        used_layout = torch.cat([o[1] for o in outs]) if outs[0][1] is not None else None
        waveforms = None
        if decode:
            n = int(round(c.window_s * c.sample_rate))
            waveforms = self.codec.vocode(self.codec.decode_mel(latents), n)
        return TiVAOutput(waveforms, latents, used_layout if return_layout else None)

    def _generate(self, cls, patch, generator, steps, guidance, use_layout, use_semantics, layout):
        c, m = self.cfg, self.model
        b = cls.shape[0]
        use_layout = c.use_layout if use_layout is None else use_layout
        if use_layout and layout is None:
            layout = m.layout(cls, patch)
        layout_map = m.layout_map(layout if use_layout else None, b, self.device, use_layout)
        s = m.semantic(cls)
        if not use_semantics:
            s = torch.zeros_like(s)
        guided = use_semantics and guidance != 1.0
        cond = self.denoiser.prepare(s, layout_map, guided)  # once per batch, reused by every step
        shape = (c.latent_channels, c.latent_time, c.latent_freq)
        if isinstance(generator, list):
            noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generator])
        else:
            noise = torch.randn((b, *shape), generator=generator, dtype=torch.float32)
        self.scheduler.set_timesteps(steps, device=self.device)
        timesteps = self.scheduler.timesteps.tolist()
        if len(timesteps) < 2 or timesteps[0] != timesteps[1]:  # the index the solver would look up (with a host read) at its first step
            self.scheduler.set_begin_index(0)
        latents = noise.to(self.device) * self.scheduler.init_noise_sigma
        latents = self.denoise(latents, cond, guidance if guided else None)
        return latents, layout if use_layout else None

    def denoise(self, latents: torch.Tensor, cond: tuple, guidance: float | None) -> torch.Tensor:
        """The solver loop over ``scheduler.timesteps`` from ``latents`` ``(B,c,h,w)`` (float32);
        ``cond`` from ``denoiser.prepare``; ``guidance`` None: conditional branch alone. No value is
        read back to the host inside the loop."""
        for t in self.scheduler.timesteps:
            latents = self.scheduler.step(self.denoiser(latents, t, cond, guidance), t, latents).prev_sample
        return latents


def load_pipeline(checkpoint=None, preset_name: str | None = None, device: str = "cpu", random_init: bool = False,
                  precision: str = "auto", compile: str = "auto") -> TiVAPipeline:
    """A pipeline from a checkpoint (a ``save`` file or a ``save_pretrained`` folder), or from a
    preset: ``tiva-tiny`` / ``tiva-tiny-nolayout`` load the shipped checkpoints; ``tiva-paper``
    needs ``checkpoint`` unless ``random_init`` (shape and timing checks only). ``precision``
    (fp32, bf16, fp16) and ``compile`` (off or a torch.compile mode) replace the model's and
    device's default inference settings unless ``"auto"`` (``inference.resolve_settings``)."""
    if checkpoint is None and preset_name in SHIPPED:
        checkpoint = SHIPPED[preset_name]
    if checkpoint is not None:
        model = TiVAModel.from_pretrained(checkpoint)
    elif random_init and preset_name:
        model = TiVAModel(preset(preset_name))
    else:
        raise TivaBenchError(f"no checkpoint for preset {preset_name!r}", "pass --checkpoint PATH (train one with `tiva-bench train`)")
    cfg = model.cfg
    encoder = frame_encoder_for(cfg, random_init=random_init)
    settings = resolve_settings(cfg, device, precision, compile)
    return TiVAPipeline(model, build_codec(cfg, random_init=random_init), encoder, device, settings)


ASSETS = Path(str(importlib.resources.files("tiva_bench.models.tiva") / "assets"))  # inside the installed package
SHIPPED = {"tiva-tiny": ASSETS / "tiva-tiny.safetensors", "tiva-tiny-nolayout": ASSETS / "tiva-tiny-nolayout.safetensors"}
