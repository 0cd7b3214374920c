"""Layout predictor T: video features -> audio layout (TiVA Sec. 3, Eq. 4, Table 4).

Encoder: per frame, the patch tokens of every layer in ``cls_layers`` are pooled over space and
concatenated, projected to ``d``, given a learned position per frame, and passed through windowed
self-attention blocks (each frame attends to frames within ``window`` of it).

Cross-attention context (``patch_cross_attention``): with ``patch_grid`` g = 1, the encoder output
(one token per frame). With g > 1 the patch tokens keep a g x g grid per frame (Eq. 4's
Patch^{4,8,11}): each cell's concatenated tokens are projected to ``d`` and added to the frame's
encoder output and a learned cell position, giving ``T * g * g`` tokens, so the decoder attends to
spatial detail as well as to the temporal context. ``cross_attention_window`` w >= 0 lets a query
attend only to frames within w of its own frame (-1: every frame, unmasked).

Decoder: queries are the frames' CLS tokens (of every layer, or only the last with
``decoder_cls="last"``) projected to ``d``, plus a learnable query vector each; blocks of
self-attention (``sa``), cross-attention and windowed self-attention (``wa``). Output
(``head``):

* ``concat`` (Eq. 4): one query per frame; one Linear over the concatenation of all ``T`` frames'
  decoder outputs produces the whole ``M x C`` layout, so every layout step can draw on every
  frame and any ``M`` needs no interpolation (``T * d * M * C`` weights).
* ``per-step``: the queries are interpolated (linearly) from ``T`` frames to ``M`` steps and one
  Linear maps each step's output to the ``C`` bands (``d * C`` weights).
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


def cross_window_mask(n_queries: int, n_frames: int, per_frame: int, window: int, device=None) -> torch.Tensor:
    """Boolean ``(n_queries, n_frames * per_frame)`` mask, True where query ``i`` may NOT attend to
    context token ``j``: query ``i`` sits at frame ``floor((i + 0.5) * n_frames / n_queries)``,
    token ``j`` at frame ``j // per_frame``; allowed within ``window`` frames."""
    q_frame = ((torch.arange(n_queries, device=device) + 0.5) * n_frames / n_queries).floor().long()
    k_frame = torch.arange(n_frames * per_frame, device=device) // per_frame
    return (q_frame[:, None] - k_frame[None, :]).abs() > window


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
    """``forward(cls (B,T,L,D), patch (B,T,L,G,D)) -> layout (B, M, C)``.

    ``G`` must be ``patch_grid ** 2`` when ``patch_grid`` > 1 (with ``patch_grid`` 1 any ``G`` is
    pooled to its mean).
    """

    @register_to_config
    def __init__(self, feature_dim: int = 768, n_layers_in: int = 3, n_frames: int = 102, layout_time: int = 102, layout_bands: int = 5,
                 dim: int = 256, heads: int = 4, encoder_layers: int = 2, decoder_layers: int = 2, window: int = 5,
                 decoder_cls: str = "all", decoder_attention: str = "sa+wa", patch_cross_attention: bool = True,
                 patch_grid: int = 1, head: str = "per-step", cross_attention_window: int = -1):
        super().__init__()
        if head not in ("concat", "per-step"):
            raise ValueError(f"head must be concat or per-step, got {head!r}")
        self.patch_in = nn.Linear(feature_dim * n_layers_in, dim)
        self.frame_pos = nn.Parameter(torch.zeros(1, n_frames, dim))
        self.encoder = nn.ModuleList([nn.ModuleList([_Attention(dim, heads), _FeedForward(dim)]) for _ in range(encoder_layers)])
        cls_width = feature_dim * (n_layers_in if decoder_cls == "all" else 1)
        self.cls_in = nn.Linear(cls_width, dim)
        self.queries = nn.Parameter(torch.randn(1, n_frames if head == "concat" else layout_time, dim) * 0.02)
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
        if head == "concat":
            self.out = nn.Sequential(nn.LayerNorm(dim), nn.Flatten(1), nn.Linear(n_frames * dim, layout_time * layout_bands))
        else:
            self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, layout_bands))
        if patch_cross_attention and patch_grid > 1:  # created only then: checkpoints without a grid keep their keys
            self.cell_in = nn.Linear(feature_dim * n_layers_in, dim)
            self.cell_pos = nn.Parameter(torch.randn(1, 1, patch_grid * patch_grid, dim) * 0.02)

    def cross_attention_context(self, x: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
        """Encoder output ``x`` ``(B, T, d)`` and ``patch`` ``(B, T, L, G, D)`` -> the tokens the
        decoder's cross-attention reads: ``(B, T, d)`` for a grid of 1, else ``(B, T * G, d)``
        (frame-major: token ``j`` belongs to frame ``j // G``)."""
        g = self.config.patch_grid
        if g == 1:
            return x
        b, t, n_layers, cells, d = patch.shape
        if cells != g * g:
            raise ValueError(f"patch tokens have {cells} positions per frame and layer; patch_grid {g} needs {g * g} "
                             "(extract the features with the same patch grid)")
        tokens = self.cell_in(patch.permute(0, 1, 3, 2, 4).reshape(b, t, cells, n_layers * d))  # B,T,G,d
        return (x[:, :, None] + tokens + self.cell_pos).flatten(1, 2)

    def forward(self, cls: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
        c = self.config
        b, t = cls.shape[:2]
        pooled = patch.mean(dim=3).flatten(2)                      # B,T,L*D (the mean over equal cells is the mean over all patches)
        x = self.patch_in(pooled) + self.frame_pos[:, :t]
        enc_mask = window_mask(t, c.window, x.device)
        for attn, ff in self.encoder:
            x = ff(attn(x, mask=enc_mask))
        cls_in = cls.flatten(2) if c.decoder_cls == "all" else cls[:, :, -1]
        q = self.cls_in(cls_in)                                    # B,T,d
        if c.head == "per-step" and t != c.layout_time:            # align frames to layout steps
            q = F.interpolate(q.transpose(1, 2), size=c.layout_time, mode="linear", align_corners=False).transpose(1, 2)
        q = q + self.queries
        n_q = q.shape[1]
        dec_mask = window_mask(n_q, c.window, q.device)
        context = ca_mask = None
        if c.patch_cross_attention:
            context = self.cross_attention_context(x, patch)
            if c.cross_attention_window >= 0:
                ca_mask = cross_window_mask(n_q, t, context.shape[1] // t, c.cross_attention_window, q.device)
        for block in self.decoder:
            if "sa" in block:
                q = block["sa"](q)
            if "ca" in block:
                q = block["ca"](q, context=context, mask=ca_mask)
            if "wa" in block:
                q = block["wa"](q, mask=dec_mask)
            q = block["ff"](q)
        out = self.out(q)
        return out.view(b, c.layout_time, c.layout_bands) if c.head == "concat" else out
