"""Feature extractors (backbones) behind one interface, with a lazy registry.

Each extractor declares its name, version, sample rate, window and outputs, imports its heavy
dependencies and loads its weights only in ``load()``, and maps a batch of mono waveforms
``(B, n)`` at its sample rate to named outputs ``{"embedding": (B, d), "logits": (B, C), ...}``.
"""

from tiva_bench.metrics.extractors.base import EXTRACTORS, AudioExtractor, ExtractorSpec, _register_backbones, get_extractor

_register_backbones()

__all__ = ["EXTRACTORS", "AudioExtractor", "ExtractorSpec", "get_extractor"]
