"""The training losses of the TiVA model's three stages (TiVA Sec. 3.4).

* ``layout``: ``L2(T(v), t_a)``: mean squared error between the predicted and the ground-truth layout.
* ``generator``: the DDPM noise-prediction loss of G conditioned on the ground-truth layout t_a and
  on the semantic tokens s, with s zeroed for ``semantic_dropout`` of the samples (for guidance).
* ``joint`` (Eq. 10): the same noise-prediction loss with the predicted layout T(v) fed to G, so
  that gradients reach G, T and S. The paper's loss has no other term; ``joint_layout_weight`` > 0
  adds ``joint_layout_weight * L2(T(v), t_a)`` (an option beyond the paper, off by default).

Shapes: ``cls`` ``(B, T, L, D)``, ``patch`` ``(B, T, L, G, D)``, ``latent`` ``(B, c, h, w)``,
``layout`` ``(B, M, C)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tiva_bench.models.tiva.schedulers import noise_schedule

STAGES = ("layout", "generator", "joint")


def layout_l2(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of ``(predicted - target) ** 2`` (the paper's L2 between layouts)."""
    return F.mse_loss(predicted, target)


def semantic_keep_mask(batch: int, dropout: float, generator: torch.Generator) -> torch.Tensor:
    """``(batch,)`` float: 0 for the samples whose semantic tokens are zeroed, else 1."""
    return (torch.rand(batch, generator=generator) >= dropout).float()


class StageLoss(nn.Module):
    """The loss of one stage as a module (so DistributedDataParallel can wrap it).

    ``forward(batch, gen) -> (loss, logs)``; ``batch`` holds ``cls``, ``patch``, ``latent`` and
    ``layout``; ``gen`` (a CPU generator) draws the dropout mask, the noise and the timesteps, so a
    step is reproducible from its seed. ``logs`` has ``eps`` (noise-prediction loss) and, where T
    runs, ``layout_l2``.
    """

    def __init__(self, model, stage: str, joint_layout_weight: float = 0.0):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (layout, generator or joint)")
        if joint_layout_weight < 0:
            raise ValueError(f"joint_layout_weight must be >= 0, got {joint_layout_weight}")
        self.model, self.stage, self.joint_layout_weight = model, stage, float(joint_layout_weight)
        self.noise_scheduler = noise_schedule(model.cfg)

    def forward(self, batch: dict, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        m, c = self.model, self.model.cfg
        if self.stage == "layout":
            loss = layout_l2(m.layout(batch["cls"], batch["patch"]), batch["layout"])
            return loss, {"layout_l2": loss.item()}
        b = batch["latent"].shape[0]
        device = batch["latent"].device
        s = m.semantic(batch["cls"]) * semantic_keep_mask(b, c.semantic_dropout, gen).to(device)[:, None, None]
        logs = {}
        layout_term = None
        if self.stage == "joint" and c.use_layout:
            layout = m.layout(batch["cls"], batch["patch"])          # t_v, fed to G (Eq. 10)
            l2 = layout_l2(layout, batch["layout"])
            logs["layout_l2"] = l2.item()
            if self.joint_layout_weight > 0:
                layout_term = self.joint_layout_weight * l2
        else:
            layout = batch["layout"]
        layout_map = m.layout_map(layout, b, device)
        noise = torch.randn(batch["latent"].shape, generator=gen).to(device)
        t = torch.randint(0, c.train_timesteps, (b,), generator=gen).to(device)
        noisy = self.noise_scheduler.add_noise(batch["latent"], noise, t)
        target = noise if c.prediction_type == "epsilon" else self.noise_scheduler.get_velocity(batch["latent"], noise, t)
        eps_loss = F.mse_loss(m.generator(noisy, t, s, layout_map), target)
        logs["eps"] = eps_loss.item()
        return (eps_loss if layout_term is None else eps_loss + layout_term), logs
