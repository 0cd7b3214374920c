"""``tiva-bench run``: generate audio for a test set with several systems, score each, tabulate.

Without ``--data`` the test set is a fresh synthetic split (the embedded default). References are
the test videos' audio (a ``.wav`` beside a video is preferred, as the synthetic benchmark writes).
Layout: ``OUT/gen/<system>/`` (audio), ``OUT/results/<system>/`` (results.json, per_clip.csv),
``OUT/tables/summary.{csv,md,tex}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench.reports.tables import write_tables
from tiva_bench import synthetic
from tiva_bench.config import ScoreConfig
from tiva_bench.core.data import folder_items
from tiva_bench.core.errors import NothingToScoreError
from tiva_bench.runner import score_folders

DEFAULT_MODELS = ["tiva-tiny", "tiva-tiny-nolayout", "ground-truth", "shifted=0.25", "shuffled", "noise"]


def run_models(models: list[str], out: Path, data: str | Path | None = None, cfg: ScoreConfig | None = None, seed: int = 0,
               n_synth: int = 32, synth_seed: int = 0, log=print) -> Path:
    out = Path(out)
    if data is None:
        synthetic.generate(out / "synth", {"test": n_synth}, seed=synth_seed)
        data = out / "synth" / "test"
        if cfg is None:
            cfg = ScoreConfig.preset("synthetic")
    cfg = cfg or ScoreConfig()
    if not cfg.cache_dir:
        cfg.cache_dir = str(out / "cache")
    items = folder_items(data)
    adapters = [get_adapter(m) for m in models]  # unknown names fail before any work
    seen: dict[str, int] = {}
    for adapter in adapters:  # two systems never share an output folder
        seen[adapter.name] = seen.get(adapter.name, 0) + 1
        if seen[adapter.name] > 1:
            adapter.name = f"{adapter.name}-{seen[adapter.name]}"
            adapter.label = f"{adapter.label} ({seen[adapter.name.rsplit('-', 1)[0]]})"
    result_dirs, summaries = [], {}
    for adapter in adapters:
        gen_dir = out / "gen" / adapter.name
        summary = adapter.generate(items, gen_dir, seed)
        summaries[adapter.name] = {k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(summary.get("skipped", []))}
        try:
            results = score_folders(gen_dir, data, cfg, label=adapter.label)
        except NothingToScoreError as exc:
            log(f"{adapter.name}: {exc}")
            continue
        results.provenance["generation"] = summaries[adapter.name]
        result_dirs.append(out / "results" / adapter.name)
        results.write(result_dirs[-1])
        log(f"{adapter.label}: {len(results.clips)} clips scored, {len(results.skipped)} skipped")
    (out / "generation.json").write_text(json.dumps(summaries, indent=1))
    if not result_dirs:
        raise NothingToScoreError("no system produced anything that could be scored")
    paths = write_tables(result_dirs, out / "tables", caption="Video-to-audio generation on the test set")
    return paths["md"]
