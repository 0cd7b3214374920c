"""Semantic encoder S: a Linear on one layer's CLS token per frame (TiVA Sec. 3)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SemanticEncoder(ModelMixin, ConfigMixin):
    """``cls`` ``(B, T, L, D)`` -> semantic tokens ``s`` ``(B, T, semantic_dim)`` from layer ``layer_index``."""

    @register_to_config
    def __init__(self, feature_dim: int = 768, semantic_dim: int = 768, layer_index: int = -1):
        super().__init__()
        self.proj = nn.Linear(feature_dim, semantic_dim)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.proj(cls[:, :, self.config.layer_index])
