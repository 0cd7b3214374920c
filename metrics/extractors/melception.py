"""Melception: SpecVQGAN's VGGSound classifier (Inception-v3 on mel spectrograms, 309 classes),
compatible with the released ``melception-21-05-10T09-28-40.pt``.

Architecture (SpecVQGAN): torchvision's Inception-v3 with 309 classes and its auxiliary head, a
one-channel first convolution (32 filters, 3x3, stride 2), and both early max-pools removed (mel
spectrograms are 80 bins high). Front-end (SpecVQGAN's spectrogram recipe): 22.05 kHz; magnitude
STFT, n_fft 1024, hop 256, centred with reflect padding (librosa < 0.10 as used in 2021); 80
Slaney mel bands 125-7600 Hz; ``(20 log10(max(m, 1e-5)) - 20 + 100) / 100`` clipped to [0, 1];
per-band standardisation with the shipped training means and standard deviations; 860 frames
(10 s: the scoring window is zero-padded to 10 s). Outputs: the 2048-d pooled features (FAD),
logits (KL) and logits without the bias (IS), as SpecVQGAN's and av-benchmark's evaluation.

Two implementations of the front-end: ``melception_spectrogram`` (librosa, one clip: the
reference) and ``MelceptionFrontend`` (torch, a batch on the extractor's device); they agree
within 1e-4 of the standardised spectrogram's range (tests/test_frontends.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tiva_bench.core.errors import TivaBenchError
from tiva_bench.core.weights import WEIGHTS
from tiva_bench.metrics.extractors.base import AudioExtractor, ExtractorSpec, register
from tiva_bench.metrics.extractors.loading import load_exactly, read_state_dict

SAMPLE_RATE, N_FFT, HOP, N_MELS, FMIN, FMAX, FRAMES = 22050, 1024, 256, 80, 125.0, 7600.0, 860


def melception_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Mono 22.05-kHz waveform -> ``(80, frames)`` in [0, 1] (before standardisation)."""
    import librosa

    spec = np.abs(librosa.stft(np.asarray(wav, np.float32), n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="reflect"))
    mel = mel_filters() @ spec
    return np.clip((20.0 * np.log10(np.maximum(mel, 1e-5)) - 20.0 + 100.0) / 100.0, 0.0, 1.0)


def melception_inputs(wavs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The reference front-end, clip by clip: ``(B, n)`` 22.05-kHz waveforms, zero-padded or cut to
    10 s -> standardised ``(B, 1, 80, 860)`` float32."""
    specs = []
    for w in wavs:
        w = np.pad(w, (0, max(0, 10 * SAMPLE_RATE - w.size)))[: 10 * SAMPLE_RATE]
        specs.append((melception_spectrogram(w)[:, :FRAMES] - mean[:, None]) / std[:, None])
    return np.stack(specs)[:, None].astype(np.float32)


def mel_filters() -> np.ndarray:
    """``(80, 513)`` Slaney mel weights, 125-7600 Hz (librosa's, as SpecVQGAN)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


class MelceptionFrontend(nn.Module):
    """The reference front-end batched in torch: ``(B, n)`` 22.05-kHz float32 -> standardised
    ``(B, 1, 80, 860)`` (zero-padded or cut to 10 s first)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mel", torch.tensor(mel_filters(), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[:, None], persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[:, None], persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        n = 10 * SAMPLE_RATE
        wavs = nn.functional.pad(wavs, (0, max(0, n - wavs.shape[-1])))[:, :n]
        spec = torch.stft(wavs, N_FFT, HOP, window=self.window, center=True, pad_mode="reflect", return_complex=True).abs()
        mel = self.mel @ spec[..., :FRAMES]                                                    # B, 80, 860
        s = torch.clamp((20.0 * torch.log10(torch.clamp(mel, min=1e-5)) - 20.0 + 100.0) / 100.0, 0.0, 1.0)
        return ((s - self.mean) / self.std)[:, None]


def build_melception(classes: int = 309) -> nn.Module:
    from torchvision.models.inception import BasicConv2d, Inception3

    net = Inception3(num_classes=classes, aux_logits=True, transform_input=False, init_weights=False)
    net.Conv2d_1a_3x3 = BasicConv2d(1, 32, kernel_size=3, stride=2)
    net.maxpool1 = nn.Identity()
    net.maxpool2 = nn.Identity()
    return net


def melception_features(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``x`` ``(B, 1, 80, 860)`` -> pooled features, logits, logits without bias (eval mode)."""
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
                 "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
        x = getattr(net, name)(x)
    pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
    return {"embedding": pooled, "logits": net.fc(pooled), "logits_unbiased": pooled @ net.fc.weight.T}


def load_stats(path) -> tuple[np.ndarray, np.ndarray]:

    try:
        table = np.loadtxt(path, dtype=np.float32)
    except ValueError as exc:
        raise TivaBenchError(f"{path} is not the Melception statistics table ({exc})") from None
    if table.shape != (N_MELS, 2):
        raise TivaBenchError(f"{path} has shape {table.shape}, expected ({N_MELS}, 2) means/stds", "tiva-bench weights download melception_stats")
    return table[:, 0], table[:, 1]


SPEC = register(ExtractorSpec(
    name="melception", version="1", sample_rate=SAMPLE_RATE, window_s=10.0, outputs={"embedding": 2048, "logits": 309, "logits_unbiased": 309},
    weights=("melception", "melception_stats"),
    frontend={"n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX, "frames": FRAMES, "pad_mode": "reflect", "db": "(20log10-20+100)/100"},
    target="tiva_bench.metrics.extractors.melception:MelceptionExtractor",
))


class MelceptionExtractor(AudioExtractor):
    spec = SPEC
    device_frontend_differs = True
    cuda_precision = "float32"

    def build(self, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        """Random weights; ``mean``/``std``: the per-band statistics (default 0 and 1)."""
        self.mean = np.zeros(N_MELS, np.float32) if mean is None else mean
        self.std = np.ones(N_MELS, np.float32) if std is None else std
        self.model = build_melception().eval().to(self.device)
        self.frontend_module = MelceptionFrontend(self.mean, self.std).to(self.device)
        return self

    def load(self, checkpoint=None, stats=None):
        path = checkpoint or WEIGHTS.require("melception")
        stats = stats or WEIGHTS.require("melception_stats")
        self.build(*load_stats(stats))
        load_exactly(self.model, read_state_dict(path, nested_key="model"), str(path))
        self.files = (path, stats)
        return super().load()

    def reference_inputs(self, wavs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(melception_inputs(wavs, self.mean, self.std)).to(self.device)

    def device_inputs(self, wavs: torch.Tensor) -> torch.Tensor:
        return self.frontend_module(wavs)

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return melception_features(self.model, x)
