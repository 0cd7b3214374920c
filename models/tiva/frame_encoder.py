"""Frozen frame encoders: uint8 frames -> CLS tokens and pooled patch tokens per layer.

Both return ``cls`` of shape ``(N, L, D)`` and ``patch`` of shape ``(N, L, G, D)`` (``G`` pooled
patch positions) for ``N`` frames.

* ``clip``: CLIP ViT-B/16 (``tiva_bench.models.tiva.clip_encoder``), D = 768, the blocks
  ``TiVAConfig.clip_blocks()`` names (layers 4, 8, 11 read 0-based or 1-based), patch tokens pooled
  to a ``patch_grid`` x ``patch_grid`` grid.
* ``thumbnail``: the tiny preset's stand-in, parameter-free, for the synthetic benchmark where no
  download is possible: each frame (resized to 64x64) becomes three 4x4 RGB grids, its mean
  colour, its peak colour and its contrast (peak minus mean) per cell, D = 48. The "CLS" of a layer
  is the whole frame's grids; the patch token of a cell of a g x g grid is the same three 4x4
  grids computed over that cell's part of the frame (g = 1: the CLS itself). Nothing in it is
  learned or random.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tiva_bench.core.video import clip_preprocess


class ThumbnailFrameEncoder(nn.Module):
    """``encode_frames(frames (N, H, W, 3) uint8) -> (cls (N, 3, 48), patch (N, 3, g*g, 48))``."""

    width = 48
    layers = (0, 1, 2)

    def __init__(self, patch_grid: int = 1):
        super().__init__()
        if patch_grid < 1 or 16 % patch_grid:
            raise ValueError(f"the thumbnail encoder's patch_grid must divide 16, got {patch_grid}")
        self.patch_grid = patch_grid

    @staticmethod
    def _grids(x: torch.Tensor, cell: int) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, 3 layers, 3, H / cell, W / cell)``: mean, peak and contrast."""
        mean = F.avg_pool2d(x, cell)
        peak = F.max_pool2d(x, cell)
        return torch.stack([mean, peak, peak - mean], dim=1)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0  # N,3,H,W
        if x.shape[-2:] != (64, 64):
            x = F.interpolate(x, size=(64, 64), mode="area")
        cls = self._grids(x, 16).flatten(2)      # N,L,48
        g = self.patch_grid
        if g == 1:
            return cls, cls.unsqueeze(2)
        fine = self._grids(x, 16 // g)           # N,L,3,4g,4g: cell (i, j) is the 4x4 block at (4i, 4j)
        n = fine.shape[0]
        cells = fine.view(n, 3, 3, g, 4, g, 4).permute(0, 1, 3, 5, 2, 4, 6)  # N,L,gi,gj,3,4,4
        return cls, cells.reshape(n, 3, g * g, 48)


class CLIPFrames(nn.Module):
    """Adapter: CLIP pre-processing + ``CLIPFrameEncoder`` behind ``encode_frames``."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.width = 768
        self.layers = encoder.layers

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, batch_frames: int = 128) -> tuple[torch.Tensor, torch.Tensor]:

        device = next(self.encoder.parameters()).device
        cls_parts, patch_parts = [], []
        for start in range(0, len(frames), batch_frames):
            pixels = torch.from_numpy(clip_preprocess(frames[start:start + batch_frames])).to(device)
            c, p = self.encoder(pixels)
            cls_parts.append(c)
            patch_parts.append(p)
        return torch.cat(cls_parts), torch.cat(patch_parts)


def build_frame_encoder(kind: str, checkpoint=None, random_init: bool = False, *, blocks: tuple[int, ...] = (4, 8, 11),
                        patch_grid: int = 1) -> nn.Module:
    """The frozen frame encoder ``kind``; ``blocks`` (0-based CLIP block indices) and ``patch_grid``
    as ``TiVAConfig.clip_blocks()`` and ``TiVAConfig.patch_grid`` give them (see
    ``frame_encoder_for``)."""
    if kind == "thumbnail":
        return ThumbnailFrameEncoder(patch_grid)
    if kind == "clip":
        from tiva_bench.models.tiva.clip_encoder import CLIPFrameEncoder

        return CLIPFrames(CLIPFrameEncoder(tuple(blocks), patch_grid, checkpoint=checkpoint, random_init=random_init))
    raise ValueError(f"unknown frame encoder {kind!r} (clip or thumbnail)")


def frame_encoder_for(cfg, checkpoint=None, random_init: bool = False) -> nn.Module:
    """The frame encoder a ``TiVAConfig`` names, reading its layers and patch grid."""
    return build_frame_encoder(cfg.frame_encoder, checkpoint, random_init, blocks=cfg.clip_blocks(), patch_grid=cfg.patch_grid)
