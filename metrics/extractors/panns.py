"""PANNs Cnn14 at 16 kHz (Kong et al. 2020), compatible with the official ``Cnn14_16k_mAP=0.438.pth``.

Front-end (as torchlibrosa, with the checkpoint's own STFT and mel weights): 16 kHz, n_fft 512,
hop 160, Hann window, centred with reflect padding, power spectrogram, 64 Slaney mel bands
50-8000 Hz, ``10 log10(max(mel, 1e-10))``. Network: BatchNorm over the mel bands, six conv blocks
(64 ... 2048 channels; two 3x3 conv + BN + ReLU, 2x2 average pooling, 1x1 after the last), mean
over frequency, max + mean over time, ``fc1`` (2048, ReLU) = the embedding, ``fc_audioset`` =
527 AudioSet logits (before the sigmoid). Inference mode only (no SpecAugment, no dropout).

The front-end is torch code inside the network (its STFT and mel weights are checkpoint entries),
so it runs batched on the extractor's device whichever front-end is asked for; it agrees with a
float64 numpy reference within 1e-4 of the log-mel range (tests/test_frontends.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tiva_bench.core.weights import WEIGHTS
from tiva_bench.metrics.extractors.base import AudioExtractor, ExtractorSpec, register
from tiva_bench.metrics.extractors.loading import load_exactly, read_state_dict

SAMPLE_RATE, N_FFT, HOP, N_MELS, FMIN, FMAX = 16000, 512, 160, 64, 50.0, 8000.0


def stft_conv_weights(n_fft: int = N_FFT) -> tuple[np.ndarray, np.ndarray]:
    """DFT x periodic-Hann kernels ``(n_fft//2+1, 1, n_fft)`` (real, imaginary), torchlibrosa's layout."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    angle = 2 * np.pi * k * n / n_fft
    return (np.cos(angle) * window)[:, None, :].astype(np.float32), (-np.sin(angle) * window)[:, None, :].astype(np.float32)


class _STFT(nn.Module):
    def __init__(self):
        super().__init__()
        real, imag = stft_conv_weights()
        self.conv_real = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        self.conv_imag = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        self.conv_real.weight.data.copy_(torch.from_numpy(real))
        self.conv_imag.weight.data.copy_(torch.from_numpy(imag))


class _Spectrogram(nn.Module):
    def __init__(self):
        super().__init__()
        self.stft = _STFT()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # (B, n) -> (B, 1, frames, bins) power
        x = F.pad(wav[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        real, imag = self.stft.conv_real(x), self.stft.conv_imag(x)
        return (real**2 + imag**2).transpose(1, 2)[:, None]


class _LogMel(nn.Module):
    def __init__(self):
        super().__init__()
        import librosa

        self.melW = nn.Parameter(torch.tensor(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).T, dtype=torch.float32))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool)


class Cnn14(nn.Module):
    """``(B, n)`` 16-kHz waveforms -> ``(embedding (B, 2048), logits (B, 527))``; keys match PANNs."""

    def __init__(self, classes: int = 527):
        super().__init__()
        self.spectrogram_extractor = _Spectrogram()
        self.logmel_extractor = _LogMel()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        return self.logmel_extractor(self.spectrogram_extractor(wav))   # B,1,frames,64

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_log_mel(self.log_mel(wav))

    def from_log_mel(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, frames, 64)`` log-mel -> ``(embedding, logits)``."""
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, 2 if i < 5 else 1)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


SPEC = register(ExtractorSpec(
    name="panns", version="1", sample_rate=SAMPLE_RATE, window_s=10.0, outputs={"embedding": 2048, "logits": 527}, weights=("panns_cnn14_16k",),
    frontend={"n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX, "ref": 1.0, "amin": 1e-10},
    target="tiva_bench.metrics.extractors.panns:PANNsExtractor",
))


class PANNsExtractor(AudioExtractor):
    spec = SPEC
    cuda_precision = "float16"

    def build(self):
        self.model = Cnn14().eval().to(self.device)
        return self

    def load(self, checkpoint=None):
        path = checkpoint or WEIGHTS.require("panns_cnn14_16k")
        self.build()
        load_exactly(self.model, read_state_dict(path, nested_key="model"), str(path))
        self.files = (path,)
        return super().load()

    def reference_inputs(self, wavs: np.ndarray) -> torch.Tensor:
        return self.model.log_mel(torch.from_numpy(np.ascontiguousarray(wavs)).to(self.device))

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding, logits = self.model.from_log_mel(x)
        return {"embedding": embedding, "logits": logits}
