"""How the TiVA sampler runs its UNet: precision, compilation, memory layout, attention kernel.

The settings change speed, never the model: the solver state (latents, DPM-Solver history) stays
float32 whatever the UNet's precision, and both guidance branches always go through one UNet call
(a batch of ``2B``: unconditional rows first, conditional rows second).

``EXACT`` (float32, eager) gives the reference outputs; ``FAST`` (bf16 autocast, ``torch.compile``
with CUDA graphs) is for the paper-sized model on a GPU. ``default_settings`` picks ``FAST`` only
for the paper-sized model on a CUDA device, ``EXACT`` otherwise; ``resolve_settings`` applies the
command line's ``--precision`` / ``--compile`` on top of that choice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass

import torch

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ATTENTION_KERNELS = ("auto", "flash", "efficient", "cudnn", "math")


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` failed; sampling goes on without compilation (same outputs, slower)."""


@dataclass(frozen=True)
class InferenceSettings:
    """``precision``: autocast dtype of the UNet calls (``fp32``: no autocast). ``compile``:
    ``off`` or a ``torch.compile`` mode (``reduce-overhead`` adds CUDA graphs); shapes are static:
    a batch smaller than one already compiled is padded with zero rows up to it (the padding's
    outputs are dropped) instead of compiling again. ``channels_last``: the UNet's weights in
    NHWC memory order (convolutions then run NHWC). ``attention``: the scaled-dot-product kernel
    (``auto``: PyTorch's choice). ``backend``: the ``torch.compile`` backend."""

    precision: str = "fp32"
    compile: str = "off"
    channels_last: bool = False
    attention: str = "auto"
    backend: str = "inductor"

    def __post_init__(self):
        for name, allowed in (("precision", PRECISIONS), ("compile", COMPILE_MODES), ("attention", ATTENTION_KERNELS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @property
    def name(self) -> str:
        """``fp32-eager``, ``bf16+reduce-overhead``, ``bf16-eager+channels-last``, ..."""
        text = f"{self.precision}{'-eager' if self.compile == 'off' else '+' + self.compile}"
        text += "+channels-last" if self.channels_last else ""
        return text + ("" if self.attention == "auto" else f"+{self.attention}-attention")

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    def to_dict(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


EXACT = InferenceSettings()
FAST = InferenceSettings(precision="bf16", compile="reduce-overhead")


def is_paper_model(cfg) -> bool:
    """The paper-sized model: the ``tiva-paper`` preset or a checkpoint trained from it (the
    AudioLDM2 latent space); the tiny presets use the mel-identity codec."""
    return cfg.codec == "audioldm2"


def default_settings(cfg, device) -> InferenceSettings:
    """``FAST`` for the paper-sized model on a CUDA device, ``EXACT`` otherwise (the tiny models and
    every CPU run keep their float32 outputs)."""
    return FAST if torch.device(device).type == "cuda" and is_paper_model(cfg) else EXACT


def resolve_settings(cfg, device, precision: str = "auto", compile: str = "auto") -> InferenceSettings:
    """``default_settings`` with ``precision`` / ``compile`` replaced unless ``"auto"``."""
    settings = default_settings(cfg, device)
    changes = {k: v for k, v in (("precision", precision), ("compile", compile)) if v not in (None, "auto")}
    return dataclasses.replace(settings, **changes)


class Denoiser:
    """The noise estimate of one solver step, under ``settings``.

    ``prepare(s, layout_map, guided)`` builds the UNet's conditioning once per batch (``s`` and the
    layout map doubled for the two guidance branches, padded to a compiled batch);
    ``__call__(latents (B,c,h,w), t, cond, guidance)`` returns eps ``(B,c,h,w)`` float32:
    ``eps_u + guidance * (eps_c - eps_u)`` from one UNet call when guided, the conditional
    estimate otherwise. Nothing here reads a value back to the host.
    """

    def __init__(self, generator, settings: InferenceSettings = EXACT, device="cpu"):
        self.generator = generator
        self.settings = settings
        self.device_type = torch.device(device).type
        self.fallback: str | None = None  # why compilation was abandoned, when it was
        self.compiled_batches: set[int] = set()
        if settings.channels_last:
            generator.to(memory_format=torch.channels_last)
        self._compiled = None
        if settings.compile != "off":
            self._compiled = torch.compile(self._unet, mode=None if settings.compile == "default" else settings.compile,
                                           backend=settings.backend, dynamic=False)

    def prepare(self, s: torch.Tensor, layout_map: torch.Tensor, guided: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(s', layout_map', B)``: the conditioning of every step (``2 B'`` rows when guided)."""
        b = s.shape[0]
        size = self._static_batch(b)
        s, layout_map = _pad(s, size), _pad(layout_map, size)
        if guided:
            s, layout_map = torch.cat([torch.zeros_like(s), s]), torch.cat([layout_map, layout_map])
        return s, layout_map, b

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, cond: tuple, guidance: float | None) -> torch.Tensor:
        s, layout_map, b = cond
        guided = guidance is not None
        x = _pad(latents, s.shape[0] // (2 if guided else 1))
        out = None
        if self._compiled is not None:
            try:
                out = self._compiled(x, t, s, layout_map, guided)
                self.compiled_batches.add(x.shape[0])
                if not guided:
                    out = out.clone()  # a CUDA graph's output is overwritten by its next replay
            except Exception as exc:  # noqa: BLE001 -- any compiler failure: the eager path gives the same outputs
                self._give_up(exc)
        if out is None:
            out = self._unet(x, t, s, layout_map, guided)
        if not guided:
            return out[:b]
        eps_u, eps_c = out.chunk(2)
        return (eps_u + guidance * (eps_c - eps_u))[:b]

    def _unet(self, x, t, s, layout_map, guided: bool) -> torch.Tensor:
        """The generator's output in float32: ``2 B`` rows (unconditional, conditional) when guided."""
        with self._autocast(), self._attention():
            return self.generator(torch.cat([x, x]) if guided else x, t, s, layout_map).float()

    def _autocast(self):
        if self.settings.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.settings.dtype)

    def _attention(self):
        if self.settings.attention == "auto":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[self.settings.attention])

    def _static_batch(self, b: int) -> int:
        """The smallest compiled batch that holds ``b`` rows (``b`` itself when none does or when
        nothing is compiled)."""
        if self._compiled is None:
            return b
        fits = [n for n in self.compiled_batches if n >= b]
        return min(fits) if fits else b

    def _give_up(self, exc: Exception) -> None:
        root = exc
        while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:  # the compiler's own error
            root = inner
        first = (str(root).strip().splitlines() or [""])[0][:200]
        self.fallback = f"{type(root).__name__}: {first}"
        self._compiled = None
        warnings.warn(f"torch.compile ({self.settings.compile}) failed, sampling without compilation: {self.fallback}",
                      CompileFallbackWarning, stacklevel=3)


def _pad(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows`` (``x`` itself when it has them)."""
    if x.shape[0] >= rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))])
