"""Feature extractors (backbones) behind one interface, with a lazy registry.

Each extractor declares its name, version, sample rate, window and outputs, imports its heavy
dependencies and loads its weights only in ``load()``, and maps a batch of mono waveforms
``(B, n)`` at its sample rate to named outputs ``{"embedding": (B, d), "logits": (B, C), ...}``.

Importing this package imports no backbone (and no torch): ``extractor_spec(name)`` and
``get_extractor(name)`` import a backbone's module the first time it is asked for.
"""

from tiva_bench.metrics.extractors.base import EXTRACTORS, AudioExtractor, ExtractorSpec, extractor_spec, get_extractor

__all__ = ["EXTRACTORS", "AudioExtractor", "ExtractorSpec", "extractor_spec", "get_extractor"]
