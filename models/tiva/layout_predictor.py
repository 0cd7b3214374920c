"""Layout predictor T: video features -> audio layout (TiVA Sec. 3, Table 4).

Encoder: per frame, the patch tokens of every layer in ``cls_layers`` are pooled over space and
concatenated, projected to ``d``, given a learned position per frame, and passed through windowed
self-attention blocks (each frame attends to frames within ``window`` of it).
Decoder: one query per layout time step: the frame's CLS tokens (of every layer, or only the last
with ``decoder_cls="last"``) projected to ``d``, plus a learnable query vector per step; blocks of
self-attention (``sa``), cross-attention to the encoder output (``patch_cross_attention``) and
windowed self-attention (``wa``); a Linear maps each step to the layout's bands.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


def window_mask(length: int, window: int, device=None) -> torch.Tensor:
    """Boolean ``(length, length)`` mask, True where attention is NOT allowed (|i - j| > window)."""
    idx = torch.arange(length, device=device)
    return (idx[None, :] - idx[:, None]).abs() > window


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x, context=None, mask=None):
        h = self.norm(x)
        kv = h if context is None else context
        return x + self.attn(h, kv, kv, attn_mask=mask, need_weights=False)[0]


class _FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        return x + self.net(x)


class LayoutPredictor(ModelMixin, ConfigMixin):
    """``forward(cls (B,T,L,D), patch (B,T,L,G,D)) -> layout (B, M, C)``."""

    @register_to_config
    def __init__(self, feature_dim: int = 768, n_layers_in: int = 3, n_frames: int = 102, layout_time: int = 102, layout_bands: int = 5,
                 dim: int = 256, heads: int = 4, encoder_layers: int = 2, decoder_layers: int = 2, window: int = 5,
                 decoder_cls: str = "all", decoder_attention: str = "sa+wa", patch_cross_attention: bool = True):
        super().__init__()
        self.patch_in = nn.Linear(feature_dim * n_layers_in, dim)
        self.frame_pos = nn.Parameter(torch.zeros(1, n_frames, dim))
        self.encoder = nn.ModuleList([nn.ModuleList([_Attention(dim, heads), _FeedForward(dim)]) for _ in range(encoder_layers)])
        cls_width = feature_dim * (n_layers_in if decoder_cls == "all" else 1)
        self.cls_in = nn.Linear(cls_width, dim)
        self.queries = nn.Parameter(torch.randn(1, layout_time, dim) * 0.02)
        blocks = []
        for _ in range(decoder_layers):
            block = nn.ModuleDict()
            if "sa" in decoder_attention.split("+"):
                block["sa"] = _Attention(dim, heads)
            if patch_cross_attention:
                block["ca"] = _Attention(dim, heads)
            if "wa" in decoder_attention.split("+"):
                block["wa"] = _Attention(dim, heads)
            block["ff"] = _FeedForward(dim)
            blocks.append(block)
        self.decoder = nn.ModuleList(blocks)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, layout_bands))

    def forward(self, cls: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
        c = self.config
        b, t = cls.shape[:2]
        pooled = patch.mean(dim=3).flatten(2)                      # B,T,L*D
        x = self.patch_in(pooled) + self.frame_pos[:, :t]
        enc_mask = window_mask(t, c.window, x.device)
        for attn, ff in self.encoder:
            x = ff(attn(x, mask=enc_mask))
        cls_in = cls.flatten(2) if c.decoder_cls == "all" else cls[:, :, -1]
        q = self.cls_in(cls_in)                                    # B,T,d
        if t != c.layout_time:                                     # align frames to layout steps
            q = F.interpolate(q.transpose(1, 2), size=c.layout_time, mode="linear", align_corners=False).transpose(1, 2)
        q = q + self.queries
        dec_mask = window_mask(c.layout_time, c.window, q.device)
        for block in self.decoder:
            if "sa" in block:
                q = block["sa"](q)
            if "ca" in block:
                q = block["ca"](q, context=x)
            if "wa" in block:
                q = block["wa"](q, mask=dec_mask)
            q = block["ff"](q)
        return self.out(q)
