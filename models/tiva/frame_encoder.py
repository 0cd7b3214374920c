"""Frozen frame encoders: uint8 frames -> CLS tokens and pooled patch tokens per layer.

Both return ``cls`` of shape ``(N, L, D)`` and ``patch`` of shape ``(N, L, G, D)`` (``G`` pooled
patch positions) for ``N`` frames.

* ``clip``: CLIP ViT-B/16 (``tiva_bench.models.tiva.clip_encoder``), D = 768, layers (4, 8, 11).
* ``thumbnail``: the tiny preset's stand-in, parameter-free, for the synthetic benchmark where no
  download is possible: each frame (resized to 64x64) becomes three 4x4 RGB grids, its mean
  colour, its peak colour and its contrast (peak minus mean) per cell, D = 48. The "CLS" of a layer
  is the whole grid; the pooled patch token is the same grid (one position). Nothing in it is
  learned or random.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tiva_bench.core.video import clip_preprocess


class ThumbnailFrameEncoder(nn.Module):
    width = 48
    layers = (0, 1, 2)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0  # N,3,H,W
        if x.shape[-2:] != (64, 64):
            x = F.interpolate(x, size=(64, 64), mode="area")
        mean = F.avg_pool2d(x, 16)                # N,3,4,4
        peak = F.max_pool2d(x, 16)
        grids = torch.stack([mean, peak, peak - mean], dim=1)  # N,3(layers),3,4,4
        cls = grids.flatten(2)                    # N,L,48
        return cls, cls.unsqueeze(2)


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


def build_frame_encoder(kind: str, checkpoint=None, random_init: bool = False) -> nn.Module:
    if kind == "thumbnail":
        return ThumbnailFrameEncoder()
    if kind == "clip":
        from tiva_bench.models.tiva.clip_encoder import CLIPFrameEncoder

        return CLIPFrames(CLIPFrameEncoder(checkpoint=checkpoint, random_init=random_init))
    raise ValueError(f"unknown frame encoder {kind!r} (clip or thumbnail)")
