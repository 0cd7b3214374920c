"""The extractor interface and registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiva_bench.core.registry import Registry
from tiva_bench.core.weights import weights_sha256


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor consumes and produces.

    name/version: identify the features (a version bump invalidates cached features).
    sample_rate: Hz of the waveforms it takes. window_s: the clip length it expects (the runner's
    scoring window is used; the extractor pads/cuts internally if it needs a fixed length).
    outputs: output name -> vector size. weights: names in the weights manager it needs
    (empty for bundled checkpoints). frontend: settings that change the features (cache key).
    """

    name: str
    version: str
    sample_rate: int
    window_s: float
    outputs: dict[str, int]
    weights: tuple[str, ...] = ()
    frontend: dict[str, Any] = field(default_factory=dict)
    target: str = ""  # "module:Class" implementing it
    classes: tuple[str, ...] = ()  # names of the logits, where the classes are small enough to list


class AudioExtractor:
    """Base class: subclasses set ``spec`` and implement ``load`` and ``forward_batch``."""

    spec: ExtractorSpec

    def __init__(self, device: str = "cpu", batch_size: int = 16):
        self.device = device
        self.batch_size = batch_size
        self._loaded = False

    def load(self) -> "AudioExtractor":
        """Import heavy modules and load weights (raises a clear error when weights are missing)."""
        self._loaded = True
        return self

    files: tuple = ()  # checkpoint files used, set by ``load``

    def weights_digests(self) -> dict[str, str]:
        """SHA-256 of each checkpoint file used (recorded in results for provenance; each file is
        hashed once per process)."""

        return {str(p): weights_sha256(p) for p in self.files}

    def forward_batch(self, wavs: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, wavs: np.ndarray) -> dict[str, np.ndarray]:
        """``wavs``: float32 ``(B, n)`` at ``spec.sample_rate`` -> outputs ``(B, d)`` float32."""
        if not self._loaded:
            self.load()
        wavs = np.asarray(wavs, dtype=np.float32)
        if wavs.ndim != 2:
            raise ValueError(f"{self.spec.name}: expected (batch, samples), got {wavs.shape}")
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, wavs.shape[0], self.batch_size):
            for key, value in self.forward_batch(wavs[start:start + self.batch_size]).items():
                parts.setdefault(key, []).append(np.asarray(value, dtype=np.float32))
        return {k: np.concatenate(v) for k, v in parts.items()}


EXTRACTORS: Registry[ExtractorSpec] = Registry("extractor")


def register(spec: ExtractorSpec) -> ExtractorSpec:
    return EXTRACTORS.register(spec.name, spec)


BACKBONE_MODULES = ("vggish", "panns", "melception", "passt", "imagebind")


def extractor_spec(name: str) -> ExtractorSpec:
    """The spec registered as ``name``; backbone modules (torch) are imported only when needed."""
    if name not in EXTRACTORS:
        _register_backbones()
    return EXTRACTORS.get(name)


def get_extractor(name: str, device: str = "cpu", batch_size: int = 16) -> AudioExtractor:
    """Instantiate (not yet load) the extractor registered as ``name``."""
    spec = extractor_spec(name)
    module, _, cls = spec.target.partition(":")
    return getattr(importlib.import_module(module), cls)(device=device, batch_size=batch_size)


register(ExtractorSpec(
    name="synth_classifier", version="1", sample_rate=16000, window_s=10.24,
    outputs={"embedding": 128, "logits": 5},
    frontend={"n_fft": 1024, "hop_length": 320, "n_mels": 64, "fmin": 0, "fmax": 8000, "log_floor": 1e-5},
    target="tiva_bench.metrics.extractors.synth_classifier:SynthClassifier",
    classes=("bell", "drum", "whistle", "crackle", "thunder"),
))


def _register_backbones() -> None:
    """Import the backbone modules so their specs are registered (imports torch)."""
    for module in BACKBONE_MODULES:
        importlib.import_module(f"tiva_bench.metrics.extractors.{module}")
