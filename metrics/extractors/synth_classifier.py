"""The synthetic domain's classifier: plays Melception's role on the synthetic benchmark.

A small CNN on log-mel spectrograms (16 kHz, n_fft 1024, hop 320, 64 mels) trained by
``scripts/train_synth_classifier.py`` on the synthetic train split; the checkpoint ships in
``metrics/extractors/assets/`` (a few hundred KB) with the seed and data settings that reproduce it.
Outputs a 128-d embedding (FAD) and 5 class logits (KL, IS, class agreement). Its front-end is
the network's first module (torch), so it runs batched on the extractor's device whichever front-end
is asked for; it agrees with a librosa reference within 1e-4 (tests/test_frontends.py).

``synth_classifier_v2`` is the same network trained on version 2 of the benchmark, with 7 classes
(v1's five, same indices, and the twins ``chime`` and ``pipe``; ``synth_classifier_v2.safetensors``).
It is a separate extractor with its own metrics (``fad_synth2``, ``kl_synth2``, ``is_synth2``,
``class_acc2``) so that v1 numbers never change and a cache entry always names the network that
made it.
"""

from __future__ import annotations

import importlib.resources

import json
from pathlib import Path

import numpy as np

from tiva_bench.metrics.extractors.base import EXTRACTORS, AudioExtractor
from tiva_bench.core.errors import TivaBenchError

ASSETS = importlib.resources.files("tiva_bench.metrics.extractors") / "assets"
CHECKPOINT = Path(str(ASSETS / "synth_classifier.safetensors"))
CHECKPOINT_V2 = Path(str(ASSETS / "synth_classifier_v2.safetensors"))
CHECKPOINTS = {1: CHECKPOINT, 2: CHECKPOINT_V2}  # synthetic benchmark version -> classifier


def build_model(n_classes: int = 5, n_mels: int = 64, width: int = 16, embed_dim: int = 128):
    """The network (torch ``nn.Module``): 4 conv blocks -> mean+max pooling -> embedding -> logits."""
    import torch
    from torch import nn

    import librosa

    class LogMel(nn.Module):
        def __init__(self, sr=16000, n_fft=1024, hop=320, n_mels=n_mels, floor=1e-5):
            super().__init__()
            self.n_fft, self.hop, self.floor = n_fft, hop, floor
            fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=sr / 2)
            self.register_buffer("mel", torch.tensor(fb, dtype=torch.float32), persistent=False)
            self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        def forward(self, wav):  # (B, n) -> (B, 1, n_mels, frames)
            spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True).abs() ** 2
            return torch.log(torch.clamp(self.mel @ spec, min=self.floor)).unsqueeze(1)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.frontend = LogMel()
            self.norm = nn.BatchNorm2d(1)
            self.features = nn.Sequential(block(1, width), block(width, width * 2), block(width * 2, width * 4), block(width * 4, width * 4))
            self.embed = nn.Linear(width * 8, embed_dim)
            self.head = nn.Linear(embed_dim, n_classes)

        def forward(self, wav):
            return self.from_log_mel(self.frontend(wav))

        def from_log_mel(self, x):
            x = self.features(self.norm(x))
            x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
            emb = torch.relu(self.embed(x))
            return emb, self.head(emb)

    return Net()


class SynthClassifier(AudioExtractor):
    spec = EXTRACTORS.get("synth_classifier")
    benchmark_version = 1
    cuda_precision = "float32"

    @property
    def checkpoint(self) -> Path:
        return CHECKPOINTS[self.benchmark_version]

    def build(self):
        self.model = build_model(n_classes=len(self.spec.classes)).eval().to(self.device)
        return self

    def load(self):
        from safetensors.torch import load_file

        retrain = f"python scripts/train_synth_classifier.py --synthetic-version {self.benchmark_version}"
        if not self.checkpoint.exists():
            raise TivaBenchError(f"the synthetic classifier checkpoint {self.checkpoint} is missing", retrain)
        self.build()
        state = load_file(str(self.checkpoint))
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor of the wrong shape (e.g. another class count)
            raise TivaBenchError(f"{self.checkpoint} does not fit the {self.spec.name} network ({str(exc).splitlines()[-1].strip()})", retrain) from None
        if missing or unexpected:
            raise TivaBenchError(f"{self.checkpoint} does not fit the classifier (missing {missing[:3]}, unexpected {unexpected[:3]})", retrain)
        self.files = (self.checkpoint,)
        return super().load()

    def reference_inputs(self, wavs: np.ndarray):
        import torch

        return self.model.frontend(torch.from_numpy(np.ascontiguousarray(wavs)).to(self.device))

    def network(self, x) -> dict:
        embedding, logits = self.model.from_log_mel(x)
        return {"embedding": embedding, "logits": logits}


class SynthClassifierV2(SynthClassifier):
    """The classifier of synthetic benchmark version 2 (7 classes)."""

    spec = EXTRACTORS.get("synth_classifier_v2")
    benchmark_version = 2


def checkpoint_metadata(version: int = 1) -> dict:
    """The training record stored in benchmark ``version``'s checkpoint (seed, data, accuracy)."""
    from safetensors import safe_open

    with safe_open(str(CHECKPOINTS[version]), "pt") as fh:
        return json.loads(fh.metadata().get("training", "{}"))
