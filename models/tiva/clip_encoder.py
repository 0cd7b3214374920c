"""Frozen CLIP ViT-B/16 image encoder giving CLS and patch tokens of chosen layers per frame.

TiVA (Sec. 3) reads CLIP's CLS and patch tokens of layers 4, 8 and 11 for every video frame. This
encoder takes 0-based indices into the 12 residual blocks (11 = the last block); the tokens are the
residual stream after that block (before ``ln_post``), width 768. Whether the paper's numbers are
0-based blocks or 1-based layers (block k-1, Hugging Face ``hidden_states[k]``) is the config's
``clip_layer_numbering``; ``TiVAConfig.clip_blocks()`` turns it into the indices taken here.
Patch tokens (14 x 14 for 224-px input) are average-pooled to a ``patch_grid`` x ``patch_grid``
grid (1 = their mean).

Weights: OpenAI's ViT-B/16 (QuickGELU activations), loaded from the weights manager's file. A
randomly initialised encoder exists only for plumbing tests (``random_init=True``) and is marked
so that nothing computed with it is cached or reported as a feature.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from tiva_bench.core.weights import WEIGHTS

WIDTH = 768
N_BLOCKS = 12
GRID = 14  # 224 / 16


class CLIPFrameEncoder(nn.Module):
    """``forward(images)``: ``(N, 3, 224, 224)`` CLIP-normalised -> ``(cls, patches)`` with shapes
    ``(N, L, 768)`` and ``(N, L, g*g, 768)`` for ``L = len(layers)``, ``g = patch_grid``."""

    def __init__(self, layers: tuple[int, ...] = (4, 8, 11), patch_grid: int = 1, checkpoint: str | Path | None = None, random_init: bool = False):
        super().__init__()
        import open_clip

        if any(not 0 <= layer < N_BLOCKS for layer in layers):
            raise ValueError(f"layers must be in 0..{N_BLOCKS - 1}, got {layers}")
        if GRID % patch_grid:
            raise ValueError(f"patch_grid must divide {GRID}")
        self.layers, self.patch_grid = tuple(layers), patch_grid
        if checkpoint is None and not random_init:

            checkpoint = WEIGHTS.require("clip_vit_b16")
        self.random_init = checkpoint is None
        if self.random_init:
            model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
        else:
            model = open_clip.load_openai_model(str(checkpoint), device="cpu", jit=False)
        self.visual = model.visual.float().eval()
        self.visual.requires_grad_(False)
        self.checkpoint = str(checkpoint) if checkpoint else "random-init"

    def train(self, mode: bool = True):  # frozen: always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.visual
        x = v._embeds(images.to(v.conv1.weight.dtype))
        cls_out, patch_out = [], []
        for idx, block in enumerate(v.transformer.resblocks):
            x = block(x)
            if idx in self.layers:
                cls_out.append(x[:, 0])
                patches = x[:, 1:].reshape(x.shape[0], GRID, GRID, WIDTH).permute(0, 3, 1, 2)
                pooled = nn.functional.adaptive_avg_pool2d(patches, self.patch_grid)
                patch_out.append(pooled.flatten(2).transpose(1, 2))
            if idx >= max(self.layers):
                break
        return torch.stack(cls_out, 1), torch.stack(patch_out, 1)
