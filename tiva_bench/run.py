"""``tiva-bench run``: generate audio for a test set with several systems, score each, tabulate.

Without ``--data`` the test set is a fresh synthetic split (the embedded default). ``--data`` is a
folder of test videos, or of reference audio (then only systems given as precomputed outputs and
the reference rows can be scored). References are the test clips' audio (a ``.wav`` beside a video
is preferred, as the synthetic benchmark writes). Every model spec is validated (names, folders,
checkpoints, system set-up) before anything is written.

Layout: ``OUT/gen/<system>/`` (audio written here; precomputed outputs are scored in place),
``OUT/results/<system>/`` (results.json with the system's conventions and timing in its
provenance, per_clip.csv), ``OUT/generation.json``, ``OUT/tables/summary.{csv,md,tex}`` (flat)
and ``OUT/tables/table1.{csv,md,tex}`` (the paper's Table 1 layout).

Pairing options (``--strip-suffix``, patterns, ``--pair-by``) apply to precomputed outputs; files
that tiva-bench writes itself are named after the clips, so only the reference-side options and
``--pair-by`` apply to them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench.baselines.base import RunContext
from tiva_bench.baselines.command import load_systems_file
from tiva_bench.reports.table1 import measured_rows, write_table1
from tiva_bench.reports.html import write_html_report
from tiva_bench.reports.tables import write_tables
from tiva_bench import synthetic
from tiva_bench.config import ScoreConfig
from tiva_bench.core.audio import MEDIA_EXTENSIONS, VIDEO_EXTENSIONS
from tiva_bench.core.data import VideoItem
from tiva_bench.core.errors import ConfigError, InputError, NothingToScoreError
from tiva_bench.core.files import atomic_write_text
from tiva_bench.core.results import load_results
from tiva_bench.runner import score_folders

DEFAULT_MODELS = ["tiva-tiny", "tiva-tiny-nolayout", "ground-truth", "shifted=0.25", "shuffled", "noise"]


def clip_items(data: str | Path) -> list[VideoItem]:
    """One item per clip below ``data``: key = relative path without extension; the video when a
    clip has one, else its audio file. Hidden files and folders are left out."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(root, "test data folder does not exist or is not a folder", "give --data a folder of videos or reference audio")
    by_key: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        key = rel.with_suffix("").as_posix()
        if key not in by_key or path.suffix.lower() in VIDEO_EXTENSIONS:
            by_key[key] = path
    if not by_key:
        raise InputError(root, "no video or audio files below the test data folder")
    return [VideoItem(k, p) for k, p in sorted(by_key.items())]


def _unique_names(adapters) -> None:
    """Two systems never share an output folder (the second ``x`` becomes ``x-2``, "label (2)")."""
    seen: dict[str, int] = {}
    for adapter in adapters:
        seen[adapter.name] = seen.get(adapter.name, 0) + 1
        if seen[adapter.name] > 1:
            k = seen[adapter.name]
            adapter.name = f"{adapter.name}-{k}"
            adapter.label = f"{adapter.label} ({k})"


def _scoring_config(cfg: ScoreConfig, kind: str) -> ScoreConfig:
    """Generated-side pairing options only apply to precomputed outputs (ours are named by clip)."""
    if kind == "precomputed":
        return cfg
    own = copy.deepcopy(cfg)
    own.pairing.strip_suffix = own.pairing.strip_prefix = ""
    own.pairing.gen_pattern = None
    return own


def _merge_skipped(results, generation_skipped: list[dict]) -> None:
    """Add the system's reason to clips it could not produce (the pairing only knows the file is
    missing); the pairing's wording is kept first so the clip still counts as a test clip."""
    reasons = {Path(s["clip"]).name: s["reason"] for s in generation_skipped}
    reasons.update({s["clip"]: s["reason"] for s in generation_skipped})
    for entry in results.skipped:
        clip = str(entry.get("clip"))
        reason = reasons.get(clip) or reasons.get(Path(clip).name)
        if reason and str(entry.get("reason", "")).startswith("no generated file named"):
            entry["reason"] = f"{entry['reason']}: {reason}"


def check_systems(models: list[str], data: str | Path | None, cfg: ScoreConfig, systems: str | Path | None = None, device: str | None = None):
    """Every model spec, the systems file and the test data checked before anything is written:
    ``(context, items or None for the synthetic split, adapters)``."""
    if not models:
        raise ConfigError("--models names no system", "e.g. --models tiva=ckpt.safetensors,difffoley=outputs/difffoley")
    synthetic_data = data is None
    ctx = RunContext(real_data=not synthetic_data, data_root=None if synthetic_data else Path(data), systems=load_systems_file(systems),
                     device=device or cfg.device)
    items = None if synthetic_data else clip_items(data)
    adapters = [get_adapter(m, ctx) for m in models]
    _unique_names(adapters)
    return ctx, items, adapters


def run_models(models: list[str], out: Path, data: str | Path | None = None, cfg: ScoreConfig | None = None, seed: int = 0,
               n_synth: int = 32, synth_seed: int = 0, log=print, systems: str | Path | None = None, device: str | None = None,
               html: bool = True) -> Path:
    """Generate with every system, score, write the tables; returns ``OUT/tables/summary.md``.

    ``systems``: the systems file (else ``$TIVA_BENCH_SYSTEMS``) for systems that run their own
    code. ``device``: where generating systems run (default ``cfg.device``).
    """
    out = Path(out)
    synthetic_data = data is None
    if cfg is None:
        cfg = ScoreConfig.preset("synthetic") if synthetic_data else ScoreConfig()
    cfg.validate()
    ctx, items, adapters = check_systems(models, data, cfg, systems, device)
    if synthetic_data:
        synthetic.generate(out / "synth", {"test": n_synth}, seed=synth_seed)
        data = out / "synth" / "test"
        ctx.data_root = Path(data)
        items = clip_items(data)
    if not cfg.cache_dir:
        cfg.cache_dir = str(out / "cache")
    result_dirs, summaries = [], {}
    for adapter in adapters:
        gen_dir = out / "gen" / adapter.name
        summary = adapter.generate(items, gen_dir, seed, ctx)
        generation_skipped = summary.get("skipped", [])
        record = {k: v for k, v in summary.items() if k != "skipped"} | {"skipped": len(generation_skipped)}
        summaries[adapter.name] = record
        try:
            results = score_folders(summary.get("gen_dir") or gen_dir, data, _scoring_config(cfg, adapter.kind), label=adapter.label)
        except NothingToScoreError as exc:
            log(f"{adapter.name}: {exc}")
            for s in generation_skipped[:5]:
                log(f"  {s['clip']}: {s['reason']}")
            continue
        _merge_skipped(results, generation_skipped)
        results.provenance["generation"] = record
        results.provenance["system"] = adapter.describe()
        result_dirs.append(out / "results" / adapter.name)
        results.write(result_dirs[-1])
        log(f"{adapter.label}: {len(results.clips)} clips scored, {len(results.skipped)} skipped")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "generation.json", json.dumps(summaries, indent=1))
    if not result_dirs:
        raise NothingToScoreError("no system produced anything that could be scored")
    paths = write_tables(result_dirs, out / "tables", caption="Video-to-audio generation on the test set")
    write_table1(measured_rows([load_results(d) for d in result_dirs]), out / "tables")
    if html:  # the page to listen and look: OUT/report/index.html
        report = write_html_report(result_dirs, out, title="tiva-bench run", n_resamples=cfg.stats.resamples or 1000, seed=cfg.stats.seed)
        log(f"report: {report}")
    return paths["md"]
