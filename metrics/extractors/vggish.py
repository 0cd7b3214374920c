"""VGGish (Hershey et al. 2017) with the torchvggish port's weights: 128-d embeddings per 0.96 s.

Front-end (the published VGGish parameters): 16 kHz; frames of 25 ms (400 samples) every 10 ms
(160) without padding; periodic Hann window; |FFT| with 512 points; 64 mel bands, 125-7500 Hz, on
the HTK mel scale, with triangular weights over the FFT bins' frequencies and the DC bin zeroed;
``log(mel + 0.01)``; non-overlapping examples of 96 frames x 64 bands. Network: four conv stages
(64, 128, 256x2, 512x2 channels, 3x3, ReLU, 2x2 max-pooling), feature maps flattened in
channels-last order (as the TensorFlow original), then 4096-4096-128 fully connected layers. As
in av-benchmark: no PCA/quantisation post-processing and no ReLU after the last layer. A clip's
embeddings are all its examples' vectors (FAD pools every example of every clip).

Two implementations of the front-end: ``vggish_examples`` (numpy, float64, one clip: the reference)
and ``VGGishFrontend`` (torch, float32, a batch on the extractor's device); they agree within 1e-4
of the log-mel range (tests/test_frontends.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tiva_bench.core.weights import WEIGHTS
from tiva_bench.metrics.extractors.base import AudioExtractor, ExtractorSpec, register
from tiva_bench.metrics.extractors.loading import load_exactly, read_state_dict

SAMPLE_RATE = 16000
WINDOW, HOP, N_FFT, N_MELS = 400, 160, 512, 64
MEL_LO, MEL_HI, LOG_OFFSET = 125.0, 7500.0, 0.01
EXAMPLE_FRAMES = 96


def hz_to_mel_htk(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def vggish_mel_matrix() -> np.ndarray:
    """``(257, 64)`` triangular HTK-mel weights over the FFT bins, DC row zeroed."""
    bins_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    bins_mel = hz_to_mel_htk(bins_hz)
    edges = np.linspace(hz_to_mel_htk(MEL_LO), hz_to_mel_htk(MEL_HI), N_MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_examples(wav: np.ndarray) -> np.ndarray:
    """Mono 16-kHz waveform -> log-mel examples ``(n_examples, 96, 64)`` float32 (0 if too short)."""
    wav = np.asarray(wav, dtype=np.float64)
    n_frames = 1 + (wav.size - WINDOW) // HOP if wav.size >= WINDOW else 0
    if n_frames <= 0:
        return np.zeros((0, EXAMPLE_FRAMES, N_MELS), np.float32)
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(wav[idx] * window, N_FFT))
    log_mel = np.log(spectrum @ vggish_mel_matrix() + LOG_OFFSET)
    n_examples = n_frames // EXAMPLE_FRAMES
    return log_mel[: n_examples * EXAMPLE_FRAMES].reshape(n_examples, EXAMPLE_FRAMES, N_MELS).astype(np.float32)


class VGGishFrontend(nn.Module):
    """``vggish_examples`` batched in torch: ``(B, n)`` 16-kHz float32 -> ``(B, E, 96, 64)``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mel", torch.tensor(vggish_mel_matrix(), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(WINDOW, periodic=True, dtype=torch.float64).float(), persistent=False)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        b, n = wavs.shape
        n_examples = (1 + (n - WINDOW) // HOP) // EXAMPLE_FRAMES if n >= WINDOW else 0
        if n_examples == 0:
            return wavs.new_zeros((b, 0, EXAMPLE_FRAMES, N_MELS))
        used = (n_examples * EXAMPLE_FRAMES - 1) * HOP + WINDOW          # the samples whole examples cover
        frames = wavs[:, :used].unfold(-1, WINDOW, HOP)                   # B, E*96, 400
        spectrum = torch.fft.rfft(frames * self.window, N_FFT).abs()      # B, E*96, 257
        return torch.log(spectrum @ self.mel + LOG_OFFSET).reshape(b, n_examples, EXAMPLE_FRAMES, N_MELS)


class VGGishNet(nn.Module):
    """Input ``(N, 1, 96, 64)`` log-mel examples -> ``(N, 128)``. Keys match torchvggish."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, 128))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                                 # N,512,6,4
        x = x.permute(0, 2, 3, 1).contiguous().flatten(1)    # channels-last flattening (TF order)
        return self.embeddings(x)


SPEC = register(ExtractorSpec(
    name="vggish", version="1", sample_rate=SAMPLE_RATE, window_s=0.96, outputs={"embedding": 128}, weights=("vggish",),
    frontend={"window": WINDOW, "hop": HOP, "n_fft": N_FFT, "n_mels": N_MELS, "fmin": MEL_LO, "fmax": MEL_HI, "log_offset": LOG_OFFSET,
              "example_frames": EXAMPLE_FRAMES, "pca": False, "final_relu": False},
    target="tiva_bench.metrics.extractors.vggish:VGGishExtractor",
))


class VGGishExtractor(AudioExtractor):
    """``embedding``: ``(B, E, 128)`` per clip (E examples: 8 for 8 s) -- FAD pools all examples."""

    spec = SPEC
    per_example = True
    device_frontend_differs = True
    cuda_precision = "float16"

    def build(self):
        self.model = VGGishNet().eval().to(self.device)
        self.frontend_module = VGGishFrontend().to(self.device)
        return self

    def load(self, checkpoint=None):
        path = checkpoint or WEIGHTS.require("vggish")
        self.build()
        load_exactly(self.model, read_state_dict(path), str(path))
        self.files = (path,)
        return super().load()

    def reference_inputs(self, wavs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([vggish_examples(w) for w in wavs])).to(self.device)   # B,E,96,64

    def device_inputs(self, wavs: torch.Tensor) -> torch.Tensor:
        return self.frontend_module(wavs)

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, e = x.shape[:2]
        return {"embedding": self.model(x.reshape(b * e, 1, EXAMPLE_FRAMES, N_MELS)).reshape(b, e, 128)}
