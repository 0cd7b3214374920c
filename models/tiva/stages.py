"""Which parts of the TiVA model each training stage updates (TiVA Sec. 3.4).

``layout``: T. ``generator``: S and G (and the learned lift of one-band layouts). ``joint``: S, T
and G (and the lift). The frame encoder (CLIP), the VAE and the vocoder are never trained; they
are not parts of ``TiVAModel``.
"""

from __future__ import annotations

from torch import nn

from tiva_bench.core.errors import ConfigError
from tiva_bench.models.tiva.losses import STAGES


def stage_parts(model, stage: str) -> list[nn.Module]:
    """The sub-modules of ``model`` that ``stage`` trains."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", "use layout, generator, joint or all")
    parts = {"layout": [model.layout], "generator": [model.semantic, model.generator],
             "joint": [model.semantic, model.layout, model.generator]}[stage]
    if model.lift is not None and stage != "layout":
        parts.append(model.lift)
    return parts


def trainable(model, stage: str) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` except those of ``stage_parts``; return those."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for part in stage_parts(model, stage) for p in part.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def stages_for(cfg, stage: str) -> list[str]:
    """The stages ``stage`` runs, in order: ``all`` is the three (``generator`` alone for a model
    without layout)."""
    if stage == "all":
        return list(STAGES) if cfg.use_layout else ["generator"]
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}", "use layout, generator, joint or all")
    return [stage]
