"""The extractor interface and registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tiva_bench.core.errors import TivaBenchError
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


FRONTENDS = ("auto", "reference", "device")
PRECISIONS = ("auto", "float32", "tf32", "float16", "bfloat16")


def resolve_frontend(frontend: str, device: str) -> str:
    """``"auto"`` -> ``"device"`` on CUDA, ``"reference"`` elsewhere; others are returned as they are."""
    if frontend not in FRONTENDS:
        raise TivaBenchError(f"unknown front-end {frontend!r}", f"use one of {', '.join(FRONTENDS)}")
    if frontend == "auto":
        return "device" if str(device).startswith("cuda") else "reference"
    return frontend


def resolve_precision(precision: str, device: str, cuda_default: str) -> str:
    """``"auto"`` -> ``cuda_default`` on CUDA, ``"float32"`` elsewhere; ``"tf32"`` is ``"float32"``
    off CUDA (no TF32 units there), so the recorded precision is the one that ran."""
    if precision not in PRECISIONS:
        raise TivaBenchError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    on_cuda = str(device).startswith("cuda")
    if precision == "auto":
        precision = cuda_default if on_cuda else "float32"
    return "float32" if precision == "tf32" and not on_cuda else precision


class AudioExtractor:
    """Base class: subclasses set ``spec`` and implement ``build``, ``load``, ``reference_inputs``,
    ``network`` (and ``device_inputs`` where ``device_frontend_differs``).

    A batch runs as: front-end -> network input on the device (``reference_inputs`` from numpy:
    the reference front-end, clip by clip where it is written that way; or ``device_inputs``: the
    same maths in torch, batched, on the device), then ``network`` in ``dtype``.

    ``frontend``: ``"reference"``, ``"device"`` or ``"auto"`` (device on CUDA). ``precision``:
    ``"float32"``, ``"tf32"``, ``"float16"``, ``"bfloat16"`` or ``"auto"`` (``cuda_precision`` on
    CUDA, float32 elsewhere). Both change the features slightly, so both are in the cache key: the
    precision as ``dtype``, a device front-end that is a second implementation as
    ``spec.frontend["implementation"]``.
    """

    spec: ExtractorSpec
    device_frontend_differs: bool = False  # a torch front-end distinct from the reference exists
    cuda_precision: str = "float32"  # the default on CUDA: chosen from tests/test_frontends.py's measurements

    def __init__(self, device: str = "cpu", batch_size: int = 16, frontend: str = "auto", precision: str = "auto"):
        self.device = device
        self.batch_size = batch_size
        self.frontend = resolve_frontend(frontend, device)
        self.dtype = resolve_precision(precision, device, self.cuda_precision)
        if self.frontend == "device" and self.device_frontend_differs:
            base = type(self).spec
            self.spec = replace(base, frontend={**base.frontend, "implementation": "torch-batched"})
        self.fallbacks = 0  # mixed-precision batches recomputed in float32 (non-finite outputs)
        self._loaded = False

    def build(self) -> "AudioExtractor":  # pragma: no cover - abstract
        """Create the network(s) with random weights on the device (no file read): ``load`` fills
        them from the checkpoint; benchmarks and tests use them as they are."""
        raise NotImplementedError

    def load(self) -> "AudioExtractor":
        """Import heavy modules and load weights (raises a clear error when weights are missing)."""
        self._loaded = True
        return self

    files: tuple = ()  # checkpoint files used, set by ``load``

    def weights_digests(self) -> dict[str, str]:
        """SHA-256 of each checkpoint file used (recorded in results for provenance; each file is
        hashed once per process)."""

        return {str(p): weights_sha256(p) for p in self.files}

    def reference_inputs(self, wavs: np.ndarray):  # pragma: no cover - abstract
        """``(B, n)`` float32 numpy -> the network's input tensor on the device (reference front-end)."""
        raise NotImplementedError

    def device_inputs(self, wavs):  # pragma: no cover - abstract
        """``(B, n)`` float32 tensor on the device -> the network's input (batched torch front-end)."""
        raise NotImplementedError

    def network(self, x) -> dict:  # pragma: no cover - abstract
        """The network's input -> named output tensors, one row per clip."""
        raise NotImplementedError

    def forward_batch(self, wavs: np.ndarray) -> dict[str, np.ndarray]:
        """One batch through the front-end (float32) and the network (in ``dtype``)."""
        import torch

        from tiva_bench.metrics.extractors.precision import precision_scope, run_network

        device_type = torch.device(self.device).type
        with torch.inference_mode():
            with precision_scope(device_type, "float32"):
                if self.frontend == "device" and self.device_frontend_differs:
                    x = self.device_inputs(torch.from_numpy(np.ascontiguousarray(wavs)).to(self.device))
                else:
                    x = self.reference_inputs(wavs)
            out, fell_back = run_network(self.network, x, device_type, self.dtype)
            self.fallbacks += fell_back
            return {k: v.cpu().numpy() for k, v in out.items()}

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


def get_extractor(name: str, device: str = "cpu", batch_size: int = 16, frontend: str = "auto", precision: str = "auto") -> AudioExtractor:
    """Instantiate (not yet load) the extractor registered as ``name`` (``frontend`` and
    ``precision``: see ``AudioExtractor``)."""
    spec = extractor_spec(name)
    module, _, cls = spec.target.partition(":")
    return getattr(importlib.import_module(module), cls)(device=device, batch_size=batch_size, frontend=frontend, precision=precision)


# The synthetic benchmark's classes in their index order (v2 keeps v1's and adds the twins). Written
# here, not imported: metrics sit below tiva_bench.synth_audio; tests/test_quality_synth.py checks
# both tuples equal synth_audio's CLASS_NAMES and CLASS_NAMES_V2.
SYNTH_CLASSES = ("bell", "drum", "whistle", "crackle", "thunder")
SYNTH_CLASSES_V2 = SYNTH_CLASSES + ("chime", "pipe")
for _name, _cls, _classes in (("synth_classifier", "SynthClassifier", SYNTH_CLASSES), ("synth_classifier_v2", "SynthClassifierV2", SYNTH_CLASSES_V2)):
    register(ExtractorSpec(
        name=_name, version="1", sample_rate=16000, window_s=10.24,
        outputs={"embedding": 128, "logits": len(_classes)},
        frontend={"n_fft": 1024, "hop_length": 320, "n_mels": 64, "fmin": 0, "fmax": 8000, "log_floor": 1e-5},
        target=f"tiva_bench.metrics.extractors.synth_classifier:{_cls}",
        classes=_classes,
    ))


def _register_backbones() -> None:
    """Import the backbone modules so their specs are registered (imports torch)."""
    for module in BACKBONE_MODULES:
        importlib.import_module(f"tiva_bench.metrics.extractors.{module}")
