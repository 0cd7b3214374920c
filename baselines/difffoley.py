"""Diff-Foley (Luo et al., NeurIPS 2023): 8-s clips at 16 kHz, two rows in Table 1.

``difffoley=DIR`` is the paper's main row, classifier-free guidance plus the alignment classifier
guidance (CFG+CG, "double guidance"); ``difffoley-cfg=DIR`` the row with classifier-free guidance
only. Files are scored in place; the native rate is read from each file.

Running its own code: Diff-Foley's inference is a notebook (``inference/diff_foley_inference.ipynb``
with ``inference/demo_util.py``), not a command line, so give a ``command`` for ``difffoley`` /
``difffoley-cfg`` in the systems file (``baselines/command.py``), e.g. a script of yours that
reads ``{videos}`` and writes ``{out}/<video name>.wav``.
"""

from __future__ import annotations

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.baselines.command import system_adapter

INFO_CG = SystemInfo(method="Diff-Foley", group="Diffusion", vis_feat="CAVP", guidance="CFG+CG", clip_s=8.0, sample_rate=16000,
                     conventions="8-s clips at 16 kHz, classifier-free + alignment-classifier guidance")
INFO_CFG = SystemInfo(method="Diff-Foley", group="Diffusion", vis_feat="CAVP", guidance="CFG", clip_s=8.0, sample_rate=16000,
                      conventions="8-s clips at 16 kHz, classifier-free guidance only")


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    """``difffoley``: the CFG+CG row."""
    return system_adapter("difffoley", "Diff-Foley", INFO_CG, arg, ctx)


def factory_cfg(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    """``difffoley-cfg``: the CFG row."""
    return system_adapter("difffoley-cfg", "Diff-Foley (CFG)", INFO_CFG, arg, ctx)
