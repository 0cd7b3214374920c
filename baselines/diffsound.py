"""DiffSound-V (the video-conditioned Diffsound the TiVA paper compares with): 10-s clips at
22.05 kHz, the first 8 s scored.

``diffsound=DIR`` scores its generated files in place; the native rate is read from each file.
Diffsound's public repository is text-to-sound; there is no public video-conditioned entry point,
so running it here needs a ``command`` in the systems file (``baselines/command.py``).
"""

from __future__ import annotations

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.baselines.command import system_adapter

INFO = SystemInfo(method="DiffSound-V", group="Diffusion", vis_feat="RGB + Flow", guidance="CFG", clip_s=10.0, sample_rate=22050,
                  conventions="10-s clips at 22.05 kHz; the first 8 s are scored")


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    return system_adapter("diffsound", "DiffSound-V", INFO, arg, ctx)
