"""SpecVQGAN (Iashin and Rahtu, BMVC 2021): 10-s clips at 22.05 kHz, the first 8 s scored.

``specvqgan=DIR`` scores its generated files in place; the native rate is read from each file.

Running its own code: its repository samples the test set with
``evaluation/generate_samples.py sampler.config_sampler=evaluation/configs/sampler.yaml
sampler.model_logdir=... sampler.splits=... data.params.rgb_feats_dir_path=...
data.params.flow_feats_dir_path=...`` from precomputed RGB and optical-flow features (its own
extraction pipeline), not from video files, so tiva-bench has no default command for it: give
one in the systems file (``specvqgan: {checkout: ..., command: [[...]]}``, placeholders in
``baselines/command.py``), or generate with its scripts and pass ``specvqgan=DIR``.
"""

from __future__ import annotations

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.baselines.command import system_adapter

INFO = SystemInfo(method="SpecVQGAN", group="AutoRegressive", vis_feat="RGB + Flow", guidance="-", clip_s=10.0, sample_rate=22050,
                  conventions="10-s clips at 22.05 kHz; the first 8 s are scored")


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    return system_adapter("specvqgan", "SpecVQGAN", INFO, arg, ctx)
