"""TiVA configuration and presets.

``tiva-paper``: the paper's sizes (CLIP ViT-B/16 features, AudioLDM2 VAE latents [8, 256, 16],
layout 102 x 5, a UNet with cross-attention to the semantic tokens, HiFi-GAN vocoder).
``tiva-tiny``: the same code at sizes that train on the synthetic benchmark on a CPU: a frozen
parameter-free thumbnail frame encoder instead of CLIP, an identity latent (the normalised 32-band
log-mel [1, 256, 32], pixel-unshuffled to [4, 128, 16]) and Griffin-Lim instead of the VAE and
vocoder, a small UNet.
``tiva-tiny-nolayout``: tiva-tiny trained and sampled with the layout channel switched off.

Every choice the paper leaves open is a field here, with its default defined once (the dataclass
default, which is the paper preset's value) and described in docs/MODEL.md. A checkpoint records
its whole config; a config saved before a field existed is read with ``LEGACY`` (the behaviour
such checkpoints were trained with), never with today's default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tiva_bench.core.errors import ConfigError, UnknownNameError
from tiva_bench.core.registry import did_you_mean


@dataclass
class TiVAConfig:
    # video features
    frame_encoder: str = "clip"            # clip | thumbnail
    fps: float = 10.0
    window_s: float = 10.24
    n_frames: int = 102
    feature_dim: int = 768                 # width of the frame encoder's tokens
    cls_layers: tuple[int, ...] = (4, 8, 11)
    semantic_layer: int = 11               # S reads this layer's CLS
    clip_layer_numbering: str = "0-based"  # 0-based: layer k = CLIP block k (11 = last); 1-based: block k-1 (HF hidden_states[k])
    patch_grid: int = 2                    # patch tokens pooled to a g x g grid per frame for T's cross-attention (1: one token per frame)
    # semantic encoder S
    semantic_dim: int = 768
    # layout
    layout_kind: str = "mel"               # mel | onset | odf  (Table 3)
    layout_time: int = 102                 # M
    layout_bands: int = 5                  # C
    # layout predictor T (Table 4)
    predictor_dim: int = 256
    predictor_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    window: int = 5                        # frames each side in windowed self-attention
    decoder_cls: str = "all"               # all (CLS of every layer in cls_layers) | last
    decoder_attention: str = "sa+wa"       # sa | wa | sa+wa
    patch_cross_attention: bool = True
    cross_attention_window: int = -1       # frames each side a decoder query may attend to (-1: every frame, unmasked)
    layout_head: str = "concat"            # concat: one Linear over all frames' decoder outputs -> M x C (Eq. 4) | per-step
    layout_clamp: bool = False             # clamp t_v to [0, 1] before G (False: T's raw output, as the paper reads)
    # audio codec
    codec: str = "audioldm2"               # audioldm2 | mel-identity
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    latent_channels: int = 8
    latent_time: int = 256
    latent_freq: int = 16
    waveform_norm: str = "audioldm2"       # audioldm2: zero mean, peak 0.5 before the mel | none: raw level
    stft_padding: str = "audioldm2"        # audioldm2: reflect-pad (n_fft - hop) / 2, uncentred frames | center: torch.stft(center=True)
    latent_sample: str = "sample"          # VAE posterior: one sample per clip (cached, reused every epoch) | mean
    # generator G (diffusers UNet2DConditionModel)
    unet_channels: tuple[int, ...] = (128, 256, 384, 640)
    unet_layers_per_block: int = 2
    unet_attention_head_dim: int = 8
    unet_norm_groups: int = 32
    unet_down_blocks: tuple[str, ...] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    unet_up_blocks: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
    latent_scale: float = 1.0              # mel-identity codec: latent = (log_mel - latent_shift) / latent_scale
    latent_shift: float = 0.0
    latent_unshuffle: int = 1              # mel-identity codec: pixel-unshuffle factor (exactly invertible)
    use_layout: bool = True
    # diffusion
    train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    semantic_dropout: float = 0.1          # share of training samples with s zeroed (for CFG)
    prediction_type: str = "epsilon"       # epsilon (the paper's DDPM loss) | v_prediction
    sampler: str = "dpmsolver"             # dpmsolver (the paper's DPM-Solver, 2nd order) | dpmsolver++
    steps: int = 25
    guidance: float = 5.0

    def validate(self) -> "TiVAConfig":
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        if self.patch_grid < 1:
            raise ValueError(f"patch_grid must be >= 1, got {self.patch_grid}")
        if not len(self.unet_channels) == len(self.unet_down_blocks) == len(self.unet_up_blocks):
            raise ValueError(f"unet_channels has {len(self.unet_channels)} entries but the UNet has {len(self.unet_down_blocks)} down and "
                             f"{len(self.unet_up_blocks)} up blocks: give one channel count per block")
        if self.cross_attention_window < -1:
            raise ValueError(f"cross_attention_window must be -1 (unmasked) or >= 0, got {self.cross_attention_window}")
        if self.decoder_attention not in ("sa", "wa", "sa+wa"):
            raise ValueError(f"decoder_attention must be sa, wa or sa+wa, got {self.decoder_attention!r}")
        if self.decoder_cls not in ("all", "last"):
            raise ValueError(f"decoder_cls must be all or last, got {self.decoder_cls!r}")
        if self.layout_kind not in ("mel", "onset", "odf"):
            raise ValueError(f"layout_kind must be mel, onset or odf, got {self.layout_kind!r}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be epsilon or v_prediction, got {self.prediction_type!r}")
        if self.semantic_layer not in self.cls_layers:
            raise ValueError("semantic_layer must be one of cls_layers")
        return self

    def clip_blocks(self) -> tuple[int, ...]:
        """0-based indices of the CLIP residual blocks whose outputs are read for ``cls_layers``."""
        shift = 1 if self.clip_layer_numbering == "1-based" else 0
        return tuple(layer - shift for layer in self.cls_layers)

    @property
    def in_channels(self) -> int:
        return self.latent_channels + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TiVAConfig":
        """A config as saved by ``to_dict``; fields it lacks take their ``LEGACY`` value."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TiVA config keys: {sorted(unknown)}")
        values = {**{k: v for k, v in LEGACY.items() if k not in data}, **data}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values).validate()


# allowed values of the string options
CHOICES: dict[str, tuple] = {
    "clip_layer_numbering": ("0-based", "1-based"),
    "layout_head": ("concat", "per-step"),
    "waveform_norm": ("audioldm2", "none"),
    "stft_padding": ("audioldm2", "center"),
    "latent_sample": ("sample", "mean"),
    "sampler": ("dpmsolver", "dpmsolver++"),
}

# The behaviour of checkpoints saved before these fields existed (e.g. the shipped tiva-tiny ones):
# a saved config that lacks a field is read with this value, so it keeps giving the same outputs.
LEGACY: dict[str, object] = {
    "clip_layer_numbering": "0-based",
    "patch_grid": 1,
    "cross_attention_window": -1,
    "layout_head": "per-step",
    "layout_clamp": False,
    "waveform_norm": "none",
    "stft_padding": "center",
    "latent_sample": "sample",
    "sampler": "dpmsolver++",
}


PRESETS: dict[str, TiVAConfig] = {
    "tiva-paper": TiVAConfig(),
    "tiva-tiny": TiVAConfig(
        frame_encoder="thumbnail", feature_dim=48, cls_layers=(0, 1, 2), semantic_layer=2, semantic_dim=64,
        predictor_dim=64, predictor_heads=4, encoder_layers=1, decoder_layers=1, window=3,
        codec="mel-identity", n_fft=1024, hop_length=640, n_mels=32, latent_channels=4, latent_time=128, latent_freq=16, latent_unshuffle=2,
        unet_channels=(32, 64, 64), unet_layers_per_block=1, unet_attention_head_dim=8, unet_norm_groups=8,
        unet_down_blocks=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"), unet_up_blocks=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        latent_scale=2.27, latent_shift=-10.64,  # the synthetic train split's log-mel mean and std: zero-mean, unit-variance latents
        # the synthetic clips' levels carry information and the latent statistics above were measured on raw levels
        waveform_norm="none", stft_padding="center",
        layout_head="per-step",  # Eq. 4's concat head would add 102*64*102*5 = 3.3M weights, twice the rest of the tiny model
        sampler="dpmsolver++",  # measured against dpmsolver on the tiny model: see docs/MODEL.md
    ),
}
PRESETS["tiva-tiny-nolayout"] = dataclasses.replace(PRESETS["tiva-tiny"], use_layout=False)


def preset(name: str) -> TiVAConfig:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)} (known: {', '.join(PRESETS)})")
    return dataclasses.replace(PRESETS[name]).validate()


def with_overrides(cfg: TiVAConfig, overrides: dict) -> TiVAConfig:
    """``cfg`` with some fields replaced; values may be strings (``"true"``, ``"2"``, ``"4,8,11"``)
    and are converted to the field's type. Unknown fields and invalid values raise ``ConfigError``."""
    names = {f.name for f in dataclasses.fields(TiVAConfig)}
    values = {}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown TiVA config field {key!r}{did_you_mean(key, names)}", "see docs/MODEL.md for the fields")
        values[key] = _coerce(key, getattr(cfg, key), value)
    try:
        return dataclasses.replace(cfg, **values).validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _coerce(key: str, current, value):
    if not isinstance(value, str):
        return tuple(value) if isinstance(current, tuple) else value
    try:
        if isinstance(current, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            return tuple(kind(v.strip()) for v in value.split(",") if v.strip())
        return type(current)(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a valid {type(current).__name__}") from None
