"""``tiva-bench demo``: the main job on the embedded synthetic benchmark, no downloads.

``tiva-bench run`` with its defaults: a fresh synthetic test split, audio from the shipped
tiva-tiny model and its no-layout ablation, and sanity baselines made from the references (ground
truth, shifted by 0.25 s, shuffled across clips, white noise); every system scored with the
synchronisation metrics and the synthetic-domain quality metrics; tables in ``OUT/tables/``.
"""

from __future__ import annotations

from pathlib import Path

from tiva_bench.config import load_config
from tiva_bench.run import DEFAULT_MODELS, run_models


def run_demo(out: Path, n: int = 32, seed: int = 0, workers: int = 0, quiet: bool = False, html: bool = True) -> Path:
    cfg = load_config(preset="synthetic", flags={"workers": workers})
    table = run_models(DEFAULT_MODELS, Path(out), None, cfg, seed=0, n_synth=n, synth_seed=seed, log=(lambda m: None) if quiet else print, html=html)
    if not quiet:
        print(table.read_text(encoding="utf-8"), end="")
        print(f"tables in {table.parent}")
    return table.parent
