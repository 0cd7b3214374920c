"""Generator G: a latent-diffusion UNet conditioned on the audio layout (input channel) and on the
semantic tokens (cross-attention) -- TiVA Sec. 3."""

from __future__ import annotations

import re

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class TiVAGenerator(ModelMixin, ConfigMixin):
    """``forward(latents (B,c,h,w), timesteps, s (B,T,d), layout_map (B,1,h,w)) -> eps (B,c,h,w)``.

    The UNet sees ``c + 1`` channels (the latent and the layout map) and predicts ``c + 1``; the
    first ``c`` output channels are the noise estimate, as in the paper.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 8, latent_time: int = 256, latent_freq: int = 16, semantic_dim: int = 768,
                 block_out_channels: tuple = (128, 256, 384, 640), layers_per_block: int = 2, attention_head_dim: int = 8,
                 norm_num_groups: int = 32, down_block_types: tuple = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types: tuple = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3):
        super().__init__()
        self.unet = UNet2DConditionModel(
            sample_size=(latent_time, latent_freq), in_channels=latent_channels + 1, out_channels=latent_channels + 1,
            down_block_types=tuple(down_block_types), up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
            cross_attention_dim=semantic_dim, attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups,
        )

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor, s: torch.Tensor, layout_map: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latents, layout_map.to(latents.dtype)], dim=1)
        out = self.unet(x, timesteps, encoder_hidden_states=s).sample
        return out[:, : self.config.latent_channels]


def build_generator(cfg) -> TiVAGenerator:
    return TiVAGenerator(cfg.latent_channels, cfg.latent_time, cfg.latent_freq, cfg.semantic_dim, tuple(cfg.unet_channels),
                         cfg.unet_layers_per_block, cfg.unet_attention_head_dim, cfg.unet_norm_groups,
                         tuple(cfg.unet_down_blocks), tuple(cfg.unet_up_blocks))



_ATTENTION = re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.attentions\.(\d+)\.")


def init_from_unet(generator: TiVAGenerator, source: dict[str, torch.Tensor], contexts: int = 1) -> dict:
    """Copy a pretrained latent-diffusion UNet's weights into G (e.g. AudioLDM2's ``unet``).

    ``source``: the pretrained UNet's state dict (diffusers key names), whose input and output have
    ``c`` channels where G has ``c + 1``: the extra input channel (the layout) and the extra output
    channel start at zero, so G first behaves exactly like the pretrained UNet. ``contexts``: how
    many cross-attention contexts the source has per attention layer (AudioLDM2: 2, one transformer
    each, interleaved); G's single context takes the first one's transformer. Tensors whose name or
    shape does not fit are left as initialised. Returns ``{"copied": [...], "skipped": [...]}``.
    """
    target = generator.unet.state_dict()
    copied, skipped = [], []
    with torch.no_grad():
        for key, value in target.items():
            match = _ATTENTION.match(key)
            src_key = key if not match else f"{match.group(1)}.attentions.{int(match.group(2)) * contexts}." + key[match.end():]
            src = source.get(src_key)
            if src is None:
                skipped.append(key)
                continue
            if src.shape == value.shape:
                value.copy_(src)
            elif key in ("conv_in.weight",) and src.shape[1] + 1 == value.shape[1] and src.shape[0] == value.shape[0]:
                value.zero_()
                value[:, : src.shape[1]] = src
            elif key in ("conv_out.weight", "conv_out.bias") and src.shape[0] + 1 == value.shape[0] and src.shape[1:] == value.shape[1:]:
                value.zero_()
                value[: src.shape[0]] = src
            else:
                skipped.append(key)
                continue
            copied.append(key)
    generator.unet.load_state_dict(target)
    return {"copied": copied, "skipped": skipped}
