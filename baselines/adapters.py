"""Adapters: every system that produces audio for a test set, behind one interface.

``get_adapter("name")`` or ``get_adapter("name=ARG", ctx)``; one file per system, one registry
line each (lazy: listing the names imports no model code):

| name | file | what it gives |
|---|---|---|
| ``tiva`` / ``tiva=PATH`` | tiva.py | TiVA from a checkpoint (plain ``tiva``: only on the synthetic benchmark) |
| ``tiva-tiny``, ``tiva-tiny-nolayout`` | tiva.py | the shipped tiny checkpoints |
| ``specvqgan=DIR`` | specvqgan.py | SpecVQGAN outputs (10 s, 22.05 kHz, first 8 s scored) |
| ``diffsound=DIR`` | diffsound.py | DiffSound-V outputs (10 s, 22.05 kHz, first 8 s scored) |
| ``difffoley=DIR``, ``difffoley-cfg=DIR`` | difffoley.py | Diff-Foley CFG+CG and CFG rows (8 s, 16 kHz) |
| ``im2wav=DIR`` | im2wav.py | IM2WAV: two 4-s halves per video concatenated |
| ``folder=DIR`` | folder.py | any system's outputs, row named after the folder |
| ``ground-truth``, ``shuffled``, ``shifted[=S]``, ``noise``, ``silence`` | sanity.py | reference rows (never ranked) |

A baseline named without ``=DIR`` runs its own code when its checkout is set up
(``baselines/command.py``), else fails in one line saying how. FoleyGen has no public code: its
numbers are reported ones (``tiva-bench report --reported tiva2024``).
"""

from __future__ import annotations

from tiva_bench.baselines.base import Adapter, RunContext
from tiva_bench.core.errors import ConfigError
from tiva_bench.core.registry import Registry

ADAPTERS: Registry = Registry("model")
for _name, _target in (
    ("tiva", "tiva:factory"), ("tiva-tiny", "tiva:factory_tiny"), ("tiva-tiny-nolayout", "tiva:factory_tiny_nolayout"),
    ("specvqgan", "specvqgan:factory"), ("im2wav", "im2wav:factory"), ("diffsound", "diffsound:factory"),
    ("difffoley", "difffoley:factory"), ("difffoley-cfg", "difffoley:factory_cfg"), ("folder", "folder:factory"),
    ("ground-truth", "sanity:ground_truth"), ("shuffled", "sanity:shuffled"), ("shifted", "sanity:shifted"),
    ("noise", "sanity:noise"), ("silence", "sanity:silence"),
):
    ADAPTERS.register_lazy(_name, f"tiva_bench.baselines.{_target}")

REPORTED_ONLY = {"foleygen": "FoleyGen has no public code or outputs"}


def get_adapter(spec: str, ctx: RunContext | None = None) -> Adapter:
    """``"name"`` or ``"name=ARG"`` -> an Adapter, validated now (unknown names raise with
    did-you-mean; a missing folder or checkout raises a one-line ConfigError)."""
    name, _, arg = spec.partition("=")
    name = name.strip()
    if name in REPORTED_ONLY and name not in ADAPTERS:
        raise ConfigError(f"'{name}': {REPORTED_ONLY[name]}", "its published numbers are in `tiva-bench report --reported tiva2024`")
    return ADAPTERS.get(name)(arg.strip() or None, ctx or RunContext())
