"""Audio codecs: waveform <-> the latent the generator works in.

``mel-identity`` (tiva-tiny): the latent is the normalised log-mel spectrogram itself
(``(log_mel - latent_shift) / latent_scale``, shape ``[1, frames, n_mels]``), decoded with
Griffin-Lim. ``audioldm2`` (tiva-paper): AudioLDM2's VAE on its 64-band log-mel (16 kHz, n_fft
1024, hop 160, magnitude mel, ``log(clamp(x, 1e-5))``) giving latents ``[8, 256, 16]`` scaled by
the VAE's ``scaling_factor``, and its SpeechT5 HiFi-GAN vocoder; both load through the weights
manager, or with random weights only for shape and timing checks (``random_init=True``).

The front-end the VAE was trained with (AudioLDM2's training data pipeline, ``AudioDataset`` of
AudioLDM-training-finetuning) is reproduced by two config options:

* ``waveform_norm="audioldm2"``: the waveform (after resampling to 16 kHz) is made zero-mean and
  scaled to a peak of 0.5: ``x = x - mean(x); x = 0.5 * x / (max|x| + 1e-8)``, computed over the
  decoded audio before it is zero-padded to the window (here: up to the last non-zero sample, so
  the window's zero padding stays zero, as in AudioLDM2's ``pad_wav``);
* ``stft_padding="audioldm2"``: reflect-pad ``(n_fft - hop) / 2`` samples on each side and take
  uncentred frames (``torch.stft(center=False)``), giving exactly ``n // hop`` frames (1024 for
  10.24 s), instead of a centred STFT (``"center"``, frames ``n // hop + 1``, the last dropped).

``log_mel`` and ``encode`` apply both, so ground-truth layouts and latents see the same front-end.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tiva_bench.core.weights import WEIGHTS

# AudioLDM2's VAE and vocoder configurations (cvssp/audioldm2, vae/ and vocoder/)
AUDIOLDM2_VAE_CONFIG = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512], "down_block_types": ["DownEncoderBlock2D"] * 3,
    "in_channels": 1, "latent_channels": 8, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 1,
    "sample_size": 1024, "up_block_types": ["UpDecoderBlock2D"] * 3,
}
AUDIOLDM2_VOCODER_CONFIG = {
    "model_in_dim": 64, "sampling_rate": 16000, "upsample_initial_channel": 1024, "upsample_rates": [5, 4, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 8, 4, 4], "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "normalize_before": False, "leaky_relu_slope": 0.1,
}


def normalise_waveform(wav: torch.Tensor, mode: str = "audioldm2") -> torch.Tensor:
    """``(B, n)`` -> ``(B, n)``. ``"none"``: unchanged. ``"audioldm2"``: per row, over the samples up
    to the last non-zero one (the decoded audio; what follows is the window's zero padding and
    stays zero): subtract the mean, then scale so that the peak is 0.5
    (``0.5 * x / (max|x| + 1e-8)``). An all-zero row stays zero."""
    if mode == "none":
        return wav
    if mode != "audioldm2":
        raise ValueError(f"waveform_norm must be audioldm2 or none, got {mode!r}")
    n = wav.shape[-1]
    idx = torch.arange(n, device=wav.device)
    nonzero = wav != 0
    length = torch.where(nonzero.any(dim=-1), n - nonzero.flip(-1).float().argmax(dim=-1), torch.zeros_like(nonzero[:, 0], dtype=torch.long))
    valid = (idx[None, :] < length[:, None]).to(wav.dtype)
    mean = (wav * valid).sum(-1, keepdim=True) / length.clamp_min(1)[:, None].to(wav.dtype)
    centred = (wav - mean) * valid
    peak = centred.abs().amax(dim=-1, keepdim=True)
    return 0.5 * centred / (peak + 1e-8)


class LogMel(nn.Module):
    """Magnitude STFT (hann) -> Slaney mel (0-8 kHz) -> ``log(clamp(x, 1e-5))``.

    ``(B, n)`` -> ``(B, frames, n_mels)`` with ``frames = n // hop``. ``padding="center"``: centred
    frames (reflect padding of n_fft / 2), the last one dropped; ``"audioldm2"``: reflect padding
    of ``(n_fft - hop) / 2`` on each side, uncentred frames (AudioLDM2's ``mel_spectrogram_train``).
    """

    def __init__(self, sr: int = 16000, n_fft: int = 1024, hop: int = 160, n_mels: int = 64, padding: str = "center"):
        super().__init__()
        import librosa

        if padding not in ("center", "audioldm2"):
            raise ValueError(f"stft padding must be center or audioldm2, got {padding!r}")
        self.n_fft, self.hop, self.padding = n_fft, hop, padding
        self.register_buffer("basis", torch.tensor(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=8000), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = wav.float()
        if self.padding == "audioldm2":
            side = (self.n_fft - self.hop) // 2
            wav = F.pad(wav.unsqueeze(1), (side, side), mode="reflect").squeeze(1)
            spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=False, return_complex=True).abs()
            n = (wav.shape[-1] - 2 * side) // self.hop
        else:
            spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True).abs()
            n = wav.shape[-1] // self.hop
        mel = torch.log(torch.clamp(self.basis @ spec, min=1e-5)).transpose(1, 2)
        return mel[:, :n]


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, length: int, n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al., momentum 0.99 as in librosa): ``(B, F, T)`` magnitudes
    -> ``(B, length)`` waveforms; phases start from a seeded random draw (deterministic)."""
    window = torch.hann_window(n_fft, device=magnitude.device)
    gen = torch.Generator("cpu").manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=gen)).to(magnitude.device)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(magnitude * angles, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        angles = accelerated / accelerated.abs().clamp_min(1e-16)
        previous = rebuilt
    return torch.istft(magnitude * angles, n_fft, hop, window=window, length=length)


class MelIdentityCodec(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.stft_padding)
        self.register_buffer("inverse_basis", torch.linalg.pinv(self.mel.basis), persistent=False)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> ``(B, frames, n_mels)`` after the configured waveform normalisation."""
        return self.mel(normalise_waveform(wav, self.cfg.waveform_norm))

    def latent_bounds(self) -> tuple[float, float]:
        """The range a latent can take: the log-mel floor log(1e-5) and a generous peak (log-mel 6,
        far above any full-scale signal at these settings). Samplers clip predictions to it."""
        c = self.cfg
        return ((float(np.log(1e-5)) - c.latent_shift) / c.latent_scale, (6.0 - c.latent_shift) / c.latent_scale)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> latent ``(B, f*f, frames/f, n_mels/f)`` (f = ``latent_unshuffle``)."""
        x = ((self.log_mel(wav) - self.cfg.latent_shift) / self.cfg.latent_scale).unsqueeze(1)
        f = self.cfg.latent_unshuffle
        return nn.functional.pixel_unshuffle(x, f) if f > 1 else x

    def decode_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> log-mel ``(B, frames, n_mels)``, clamped to the range a log-mel can take
        (below the floor is silence)."""
        f = self.cfg.latent_unshuffle
        x = nn.functional.pixel_shuffle(latents, f) if f > 1 else latents
        return x[:, 0].clamp(*self.latent_bounds()) * self.cfg.latent_scale + self.cfg.latent_shift

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, n_samples: int) -> np.ndarray:
        """Griffin-Lim from the log-mel (least-squares mel inversion, clipped at 0):
        ``(B, frames, n_mels)`` -> ``(B, n_samples)``."""
        c = self.cfg
        mel = torch.exp(log_mel.float().clamp(-11.6, 8.0)).transpose(1, 2)           # B, n_mels, T
        n_frames = 1 + n_samples // c.hop_length                                      # centred frames
        if mel.shape[-1] < n_frames:  # the codec dropped the last centred frame: repeat it
            mel = torch.cat([mel, mel[..., -1:].expand(-1, -1, n_frames - mel.shape[-1])], dim=-1)
        magnitude = (self.inverse_basis.to(mel.device) @ mel).clamp_min(0)
        return griffin_lim(magnitude, c.n_fft, c.hop_length, n_samples).cpu().numpy().astype(np.float32)


class AudioLDM2Codec(nn.Module):
    def __init__(self, cfg, random_init: bool = False, weights=None):
        super().__init__()
        from diffusers import AutoencoderKL
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        self.cfg = cfg
        self.mel = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.stft_padding)
        if random_init:
            self.vae = AutoencoderKL(**AUDIOLDM2_VAE_CONFIG)
            self.vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**AUDIOLDM2_VOCODER_CONFIG))
            self.scaling_factor = 1.0
        else:
            from safetensors.torch import load_file


            weights = weights or WEIGHTS
            vae_cfg = json.loads(weights.require("audioldm2_vae_config").read_text())
            voc_cfg = json.loads(weights.require("audioldm2_vocoder_config").read_text())
            self.vae = AutoencoderKL.from_config(vae_cfg)
            self.vae.load_state_dict(load_file(str(weights.require("audioldm2_vae"))))
            self.vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**{k: v for k, v in voc_cfg.items() if not k.startswith("_")}))
            self.vocoder.load_state_dict(load_file(str(weights.require("audioldm2_vocoder"))))
            self.scaling_factor = float(vae_cfg.get("scaling_factor", 1.0))
        self.vae.eval().requires_grad_(False)
        self.vocoder.eval().requires_grad_(False)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` -> ``(B, frames, n_mels)`` after the configured waveform normalisation."""
        return self.mel(normalise_waveform(wav, self.cfg.waveform_norm))

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, n)`` -> scaled latents ``(B, 8, 256, 16)``: one draw from the VAE posterior
        (``latent_sample="sample"``, from ``generator`` or torch's global one) or its mean."""
        mel = self.log_mel(wav).unsqueeze(1)                         # B,1,1024,64
        dist = self.vae.encode(mel).latent_dist
        z = dist.mode() if self.cfg.latent_sample == "mean" else dist.sample(generator)
        return z * self.scaling_factor

    @torch.no_grad()
    def decode_mel(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scaling_factor).sample[:, 0]

    @torch.no_grad()
    def vocode(self, log_mel: torch.Tensor, n_samples: int) -> np.ndarray:
        wav = self.vocoder(log_mel).float().cpu().numpy()
        out = np.zeros((wav.shape[0], n_samples), np.float32)
        out[:, : min(n_samples, wav.shape[1])] = wav[:, :n_samples]
        return out


def build_codec(cfg, random_init: bool = False):
    if cfg.codec == "mel-identity":
        return MelIdentityCodec(cfg)
    if cfg.codec == "audioldm2":
        return AudioLDM2Codec(cfg, random_init=random_init)
    raise ValueError(f"unknown codec {cfg.codec!r}")
