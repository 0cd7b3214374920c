"""Helpers of the parity tier: reference modules imported without their packages' networked
``__init__``, real-looking test signals, the deviation measure, and the table printed at the end.

Deviation: for outputs ``ours`` and ``ref`` of shape ``(..., d)``, the largest over vectors of
``||ours_i - ref_i||_2 / ||ref_i||_2`` (a vector whose reference norm is 0 counts its absolute
error). The tier's tolerance for every network output is 1e-5 in float32.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

TOLERANCE = 1e-5
ROWS: list[tuple[str, str, str, float, str]] = []


def deviation(ours, ref) -> float:
    """Largest relative L2 error over the last axis (see the module docstring)."""
    a = np.asarray(ours, np.float64)
    b = np.asarray(ref, np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    a = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    b = b.reshape(-1, b.shape[-1]) if b.ndim else b.reshape(1, 1)
    err = np.linalg.norm(a - b, axis=1)
    norm = np.linalg.norm(b, axis=1)
    return float(np.max(np.where(norm > 0, err / np.where(norm > 0, norm, 1.0), err))) if a.size else 0.0


def record(backbone: str, what: str, reference: str, value: float, note: str = "") -> float:
    """Remember one comparison for the table printed at the end of the run; returns ``value``."""
    ROWS.append((backbone, what, reference, float(value), note))
    return value


def require(name: str):
    """Import a reference module; a missing one fails the test module (never skips) with the fix."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"the parity tier needs {name} ({exc}); set it up with: bash scripts/parity_env.sh", pytrace=False)


def package_dir(name: str) -> Path:
    """Folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the parity tier needs the '{name}' package: bash scripts/parity_env.sh")
    return Path(list(spec.submodule_search_locations)[0])


def import_without_init(monkeypatch, dotted: str):
    """Import ``pkg.sub.module`` from its file with every parent package registered as an empty
    namespace (their ``__init__`` files, which fetch weights or import heavy optional code, never run)."""
    parts = dotted.split(".")
    root = package_dir(parts[0])
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        if name not in sys.modules or getattr(sys.modules[name], "__file__", None):
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root.joinpath(*parts[1:i]))]
            monkeypatch.setitem(sys.modules, name, pkg)
    path = root.joinpath(*parts[1:]).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, dotted, module)
    spec.loader.exec_module(module)
    return module


def signals(sr: int, seconds: float = 8.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Real-looking float32 mono signals at ``sr``: impulses, a tone with a chirp, noise, silence,
    a clip shorter than every window (1.3 s) and one longer than every window (12 s)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    impulses = np.zeros(n)
    impulses[(np.arange(0.25, seconds, 0.7) * sr).astype(int)] = 0.9
    tone = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    noise = 0.3 * rng.standard_normal(n)
    short = (0.5 * rng.standard_normal(int(1.3 * sr)) * np.exp(-np.arange(int(1.3 * sr)) / (0.3 * sr)))
    m = int(12 * sr)
    long = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(m) / sr) * (1 + np.sin(2 * np.pi * 0.5 * np.arange(m) / sr)) / 2 + 0.05 * rng.standard_normal(m)
    out = {"impulses": impulses, "tone": tone, "noise": noise, "silence": np.zeros(n), "short": short, "long": long}
    return {k: np.clip(v, -1, 1).astype(np.float32) for k, v in out.items()}



def fit(wav: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or cut to ``n`` samples."""
    return np.pad(wav, (0, max(0, n - wav.size)))[:n]


def randomise_batchnorm(module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters (random init
    leaves mean 0 / var 1, which would hide a swapped or missing statistic)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
