"""Score folders: pair -> clip metrics (workers) -> extract into the cache -> evaluate from it -> Results.

1. ``pair_folders`` matches generated to reference files (unmatched and unusable files are listed).
2. ``clip_scoring`` decodes each pair once, in worker processes under the pool supervisor, and
   computes the clip metrics (sync, onsets, energy). A file that cannot be decoded, or a clip whose
   worker dies twice, is skipped with its reason; every other clip is scored.
3. ``extract`` fills the content-keyed feature cache for each backbone a set metric needs.
4. ``evaluate`` computes each set metric from the cache only, from the inputs the metric declares.

Backbones are loaded before any decoding, so missing weights fail in seconds.

Under torchrun (``group``: a joined ``core.distributed.RankGroup``) every rank runs this same
function: the ranks check they were given the same work, each scores its share of the clips and
all receive every outcome, each extracts its share of the features into the shared cache, and
after that exchange (a barrier) rank 0 alone evaluates from the cache; the other ranks return None.
Shares are dealt in whole chunks and batches, so the values equal a one-process run's.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tiva_bench.clip_scoring import (init_sync_worker, init_worker, prepare_process, score_pair, score_pair_in_worker,
                                     score_sync_chunk_in_worker, sync_only)
from tiva_bench.config import ScoreConfig, to_dict
from tiva_bench.core.audio import VIDEO_EXTENSIONS
from tiva_bench.core.data import read_class_label
from tiva_bench.core.errors import NothingToScoreError
from tiva_bench.core.distributed import DistributedError, Launch, RankGroup, rank_device, shard
from tiva_bench.core.files import file_digest, text_digest
from tiva_bench.core.pool import TaskFailure, n_workers, supervised_map, usable_cpus
from tiva_bench.core.results import ClipResult, Results, SetValue, aggregate, environment_provenance, provenance, utc_now
from tiva_bench.evaluate import ClipSources, evaluate_set_metric
from tiva_bench.extract import AUDIO, VIDEO, ExtractionReport, extract_audio, extract_video, feature_cache, merge_reports
from tiva_bench.metrics.extractors import get_extractor
from tiva_bench.metrics.functional.onset_strength import fft_backend
from tiva_bench.metrics.functional.stats import bootstrap_mean_intervals
from tiva_bench.metrics.registry import CLIP_LEVEL, SET_LEVEL, MetricSpec, resolve_metrics
from tiva_bench.pairing import Pair, pair_folders
from tiva_bench.reports.stats_summary import fast_frechet_applies, set_metric_interval

Progress = Callable[..., Iterable]
ENTRY_WAIT_S = 30.0  # how long rank 0 waits for other ranks' cache entries to show on a shared file system


def video_for(pair: Pair, videos_dir: str) -> Path | None:
    """The video of a clip: ``videos_dir/<key>.<ext>``, else the reference if it is a video, else
    a video beside the reference with the same stem."""
    candidates = []
    if videos_dir:
        candidates += [Path(videos_dir) / f"{pair.key}{ext}" for ext in VIDEO_EXTENSIONS]
    if pair.ref.suffix.lower() in VIDEO_EXTENSIONS:
        candidates.append(pair.ref)
    candidates += [pair.ref.with_suffix(ext) for ext in VIDEO_EXTENSIONS]
    return next((c for c in candidates if c.exists()), None)


SYNC_CHUNK = 32  # most pairs per task on the batched sync-only path (per-chunk costs: batched DTW, messages)
SYNC_CHUNK_MIN = 4


def sync_chunks(pairs: list, workers: int) -> list[list]:
    """``pairs`` cut into consecutive chunks, in order: ``SYNC_CHUNK`` pairs while many remain, then
    smaller (an eighth of what remains per worker, at least ``SYNC_CHUNK_MIN``), so the workers
    finish together instead of one waiting for the other's last big chunk."""
    chunks, start = [], 0
    while start < len(pairs):
        size = max(SYNC_CHUNK_MIN, min(SYNC_CHUNK, -(-(len(pairs) - start) // (4 * max(1, workers)))))
        chunks.append(pairs[start:start + size])
        start += size
    return chunks


def iter_clip_outcomes(pairs: list[Pair], cfg: ScoreConfig, specs: list[MetricSpec], on_notice: Callable[[str], None] | None = None):
    """``(index, ClipOutcome | TaskFailure)`` for every pair, in order; worker processes when
    ``cfg.workers`` asks for more than one and there are enough pairs to pay for them.

    Sync-only runs (W-dis / DTW-dis) take the batched path: chunks of pairs per task, decoded and
    scored together (``metrics.sync.score_sync_chunk``); a chunk whose worker died twice is scored
    again pair by pair, so only the clip that kills a worker is lost.
    """
    if sync_only(specs, cfg):
        yield from _iter_sync_outcomes(pairs, cfg, specs, on_notice)
        return
    workers = n_workers(cfg.workers, len(pairs), on_notice)
    prepare_process()  # validates numba's cache once, before any worker loads it
    if workers == 1 or len(pairs) < 8:
        for index, pair in enumerate(pairs):
            yield index, score_pair(pair, cfg, specs)
        return
    yield from supervised_map(score_pair_in_worker, pairs, workers=workers, initializer=init_worker,
                              initargs=(cfg, [s.name for s in specs]), on_notice=on_notice)


def _iter_sync_outcomes(pairs: list[Pair], cfg: ScoreConfig, specs: list[MetricSpec], on_notice):
    names = [s.name for s in specs]
    chunks = sync_chunks(pairs, n_workers(cfg.workers, len(pairs)))
    workers = n_workers(cfg.workers, len(chunks), on_notice)
    index = 0
    for chunk_index, outcome in supervised_map(score_sync_chunk_in_worker, chunks, workers=workers, initializer=init_sync_worker,
                                               initargs=(cfg, names), on_notice=on_notice, prefetch=2):
        chunk = chunks[chunk_index]
        if isinstance(outcome, TaskFailure):  # find the clip that failed: one pair per task
            singles = supervised_map(score_pair_in_worker, chunk, workers=min(workers, len(chunk)), initializer=init_worker,
                                     initargs=(cfg, names), on_notice=on_notice)
            outcome = [single for _, single in singles]
        for single in outcome:
            yield index, single
            index += 1


def _undefined_warnings(clips: list[ClipResult], set_values: dict) -> list[str]:
    out = []
    for name, sv in set_values.items():
        if sv.n_undefined:
            reasons: dict[str, int] = {}
            for c in clips:
                if name in c.undefined:
                    reasons[c.undefined[name]] = reasons.get(c.undefined[name], 0) + 1
            top = "; ".join(f"{r} ({k})" for r, k in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
            out.append(f"{name}: undefined for {sv.n_undefined} of {len(clips)} clips, left out of the mean: {top}")
    return out


def add_clip_intervals(set_values: dict[str, SetValue], clips: list[ClipResult], cfg: ScoreConfig) -> None:
    """Percentile-bootstrap interval of each clip metric's mean over the clips that define it."""
    st = cfg.stats
    if st.resamples <= 0:
        return
    todo = {}
    for name in set_values:
        values = np.array([c.values.get(name, np.nan) for c in clips], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            todo[name] = values
    # metrics with as many defined clips share one set of resample draws (each interval is exactly
    # what it is alone: the draws depend only on the count and the seed)
    limits = dict(zip(todo, bootstrap_mean_intervals(list(todo.values()), st.resamples, st.confidence, st.seed)))
    for name, (low, high) in limits.items():
        sv = set_values[name]
        sv.ci_low, sv.ci_high = float(low), float(high)
        sv.ci = {"method": "percentile bootstrap over clips", "confidence": st.confidence, "n_resamples": st.resamples, "seed": st.seed}


def add_set_interval(sv: SetValue, spec: MetricSpec, inputs, cfg: ScoreConfig, warnings: list[str]) -> None:
    """Bootstrap interval of a set metric (clips resampled, the metric recomputed), where affordable."""
    st = cfg.stats
    if st.set_intervals == "never" or st.set_resamples <= 0:
        return
    if st.set_intervals == "auto" and spec.group == "fad" and not fast_frechet_applies(inputs.gen["embedding"]):
        warnings.append(f"{spec.name}: no interval ({sv.n} clips make the Frechet bootstrap cost minutes; --set stats.set_intervals=always computes it)")
        return
    record = set_metric_interval(spec.compute, inputs, n_resamples=st.set_resamples, seed=st.seed, confidence=st.confidence, kind=spec.group)
    sv.ci_low, sv.ci_high, sv.ci = record["ci_low"], record["ci_high"], record["ci"]


def rank_config(cfg: ScoreConfig, launch: Launch) -> ScoreConfig:
    """The settings one rank works with: where several ranks share a machine and ``workers`` is 0
    (one per core), its cores are split between them; the results record the settings as given."""
    if not launch.distributed or cfg.workers > 0:
        return cfg
    return replace(cfg, workers=max(1, usable_cpus() // launch.local_world_size))


def _work_digest(cfg: ScoreConfig, pairs: list[Pair]) -> str:
    """What must be equal on every rank: the clips and every setting that changes a value (not the
    machine-local ones: worker count and folder paths)."""
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("workers", "cache_dir", "videos")}
    return text_digest(json.dumps([settings, [p.key for p in pairs]], sort_keys=True, default=str))


def _check_same_work(group: RankGroup, cfg: ScoreConfig, pairs: list[Pair]) -> None:
    seen = group.all_gather((_work_digest(cfg, pairs), len(pairs)), "start")
    odd = [r for r, (digest, _) in enumerate(seen) if digest != seen[0][0]]
    if odd:
        raise DistributedError(f"rank {odd[0]} was given other work than rank 0 ({seen[odd[0]][1]} clips against {seen[0][1]}, or other settings)",
                               "start every rank with the same command, on folders every machine sees the same")


def _clip_outcomes(pairs: list[Pair], cfg: ScoreConfig, specs: list[MetricSpec], group: RankGroup,
                   progress: Progress | None, on_notice) -> tuple[list[tuple[int, Any]], int]:
    """``(index, ClipOutcome | TaskFailure)`` for every pair, in order, and how many this rank scored.

    With several ranks each scores its share and all receive every outcome (a clip's values depend
    on its pair only). The batched sync path is dealt whole chunks of ``SYNC_CHUNK`` pairs, so every
    chunk is the one a single process scores together.
    """
    launch = group.launch
    mine = shard(len(pairs), launch.rank, launch.world_size, SYNC_CHUNK if sync_only(specs, cfg) else 1)
    outcomes: Iterable = iter_clip_outcomes([pairs[i] for i in mine], cfg, specs, on_notice)
    if progress is not None:
        outcomes = progress(outcomes, total=len(mine), desc="scoring")
    local = [(mine[i], outcome) for i, outcome in outcomes]
    if not launch.distributed:
        return local, len(local)
    return sorted((item for part in group.all_gather(local, "clip metrics") for item in part), key=lambda item: item[0]), len(local)


def _take(files: dict[str, Path], indices: list[int]) -> dict[str, Path]:
    items = list(files.items())
    return dict(items[i] for i in indices)


def _extract_features(extractors: dict, caches: dict, set_specs: list[MetricSpec], clips: list[ClipResult], sources: ClipSources,
                      cfg: ScoreConfig, group: RankGroup, progress: Progress | None, on_notice) -> tuple[dict[str, ExtractionReport], dict[str, dict]]:
    """Fill the cache for every backbone; returns, per backbone, this rank's report and the
    ``(kind, digest) -> path`` entries evaluation will read (every rank's).

    With several ranks each extracts its share, dealt in whole batches of ``cfg.batch_size``
    files, so that with a cold cache every forward batch is the one a single process forms.
    """
    launch = group.launch
    reports, entries = {}, {}
    for name, extractor in extractors.items():
        needs = {src for s in set_specs if s.extractor == name for src in s.inputs}
        audio_files = {}
        for i, c in enumerate(clips):
            if "gen" in needs:
                audio_files[sources.gen[i]] = Path(c.gen)
            if "ref" in needs or "labels" in needs:
                audio_files[sources.ref[i]] = Path(c.ref)
        mine = shard(len(audio_files), launch.rank, launch.world_size, cfg.batch_size)
        report = extract_audio(extractor, caches[name][AUDIO], _take(audio_files, mine), cfg, progress, on_notice)
        entries[name] = {(AUDIO, d): p for d, p in audio_files.items()}
        if VIDEO in needs:
            videos = _take(sources.video_paths, shard(len(sources.video_paths), launch.rank, launch.world_size))
            video_report = extract_video(extractor, caches[name][VIDEO], videos, cfg.recompute)
            report.computed += video_report.computed
            report.from_cache += video_report.from_cache
            report.failed.update(video_report.failed)
            entries[name].update({(VIDEO, d): p for d, p in sources.video_paths.items()})
        reports[name] = report
    return reports, entries


def _await_entries(caches: dict, entries: dict[str, dict], reports: dict[str, ExtractionReport], wait_s: float = ENTRY_WAIT_S) -> None:
    """Rank 0 must see every entry the other ranks wrote before it evaluates; a shared file system
    may show a new file a little late, so this waits up to ``wait_s`` seconds for them."""
    expected = [caches[name][kind].path_for(digest) for name, found in entries.items() for (kind, digest), path in found.items()
                if str(path) not in reports[name].failed]
    deadline = time.monotonic() + wait_s
    missing = expected
    while True:
        missing = [entry for entry in missing if not entry.is_file()]  # an entry once seen stays
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if missing:
        raise DistributedError(f"{len(missing)} feature cache entries written by other ranks are not visible to rank 0 (e.g. {missing[0]})",
                               "the feature cache must be one folder every machine shares: --cache-dir on a shared file system")


def _run_environment(specs: list[MetricSpec], cfg: ScoreConfig) -> dict:
    """``environment_provenance()``, and the FFT library of the onset strength where a sync metric
    is computed with tiva-bench's own (MKL's and numpy's agree to 1e-6 of a curve's maximum)."""
    env = environment_provenance()
    if cfg.sync.odf_impl == "fast" and any(s.group == "sync" for s in specs):
        env["onset_strength_fft"] = fft_backend()
    return env


def score_folders(gen_dir: str | Path, ref_dir: str | Path, cfg: ScoreConfig | None = None, label: str | None = None,
                  progress: Progress | None = None, on_notice: Callable[[str], None] | None = None,
                  group: RankGroup | None = None) -> Results | None:
    """Score every generated file in ``gen_dir`` against its namesake in ``ref_dir``.

    ``progress(iterable, total=..., desc=...)`` wraps long loops (e.g. ``tqdm``); ``on_notice``
    receives one-line notices (workers capped, a worker died and its clip is retried). Raises
    ``NothingToScoreError`` when no clip could be scored; otherwise problems are in
    ``Results.skipped`` / ``Results.warnings``.

    ``group``: the ranks of a torchrun launch (``core.distributed.RankGroup``, joined). Each rank
    scores its share of the clips and extracts its share of the features into the shared cache;
    rank 0 alone evaluates and returns the ``Results``, equal to a one-process run's; the other
    ranks return None.
    """
    cfg = (cfg or ScoreConfig()).validate()
    group = group or RankGroup()
    launch = group.launch
    work_cfg = rank_config(cfg, launch)
    specs = resolve_metrics(cfg.metrics)
    clip_specs = [s for s in specs if s.level == CLIP_LEVEL]
    set_specs = [s for s in specs if s.level == SET_LEVEL]
    started, t0 = utc_now(), time.perf_counter()
    warnings: list[str] = []
    device = rank_device(cfg.device, launch)  # the cache is keyed by cfg.device, the same on every rank
    extractors = {name: get_extractor(name, device, cfg.batch_size).load() for name in dict.fromkeys(s.extractor for s in set_specs)}
    damaged = lambda path, reason: warnings.append(f"damaged cache entry {path} ({reason}): recomputed")  # noqa: E731
    caches = {name: {AUDIO: feature_cache(ex, cfg, AUDIO, damaged), VIDEO: feature_cache(ex, cfg, VIDEO, damaged)} for name, ex in extractors.items()}

    pairing = pair_folders(gen_dir, ref_dir, cfg.pairing)
    if launch.distributed:
        _check_same_work(group, cfg, pairing.pairs)
    skipped = [asdict(s) for s in pairing.skipped]
    warnings.extend(pairing.warnings)
    clips: list[ClipResult] = []
    sources = ClipSources()
    needs_labels = any("labels" in s.inputs for s in set_specs)  # a sidecar read per clip otherwise
    needs_video = any(VIDEO in s.inputs for s in set_specs)
    outcomes, n_scored_here = _clip_outcomes(pairing.pairs, work_cfg, specs, group, progress, on_notice)
    for index, outcome in outcomes:
        pair = pairing.pairs[index]
        if isinstance(outcome, TaskFailure):
            skipped.append({"clip": pair.key, "reason": f"could not be scored: {outcome.reason}", "path": str(pair.gen)})
        elif outcome.result is None:
            skipped.append(outcome.skipped)
        else:
            clips.append(outcome.result)
            sources.gen.append(outcome.gen_digest)
            sources.ref.append(outcome.ref_digest)
            sources.labels.append(read_class_label(pair.ref) if needs_labels else None)
            video = video_for(pair, cfg.videos) if needs_video else None
            sources.video.append(file_digest(video) if video is not None else None)
            if video is not None:
                sources.video_paths[sources.video[-1]] = video
    if not clips:
        if not launch.is_main:  # every rank knows; rank 0 says it once
            return None
        why = f"{len(skipped)} skipped" if skipped else "no media files found"
        error = NothingToScoreError(f"nothing could be scored in {gen_dir} against {ref_dir} ({why})",
                                    "the reasons are listed as 'skipped'; check the folder names and --pair-by / --strip-suffix")
        error.skipped, error.ignored = skipped, pairing.ignored
        raise error

    n_warnings = len(warnings)
    reports, entries = _extract_features(extractors, caches, set_specs, clips, sources, work_cfg, group, progress, on_notice)
    ranks: list[dict] = []
    if launch.distributed:
        mine = {"rank": launch.rank, "device": device, "clips_scored": n_scored_here,
                "features_computed": sum(r.computed for r in reports.values()), "features_from_cache": sum(r.from_cache for r in reports.values())}
        gathered = group.all_gather((mine, reports, warnings[n_warnings:]), "feature extraction")
        if not launch.is_main:
            return None
        ranks = [g[0] for g in gathered]
        warnings[n_warnings:] = [w for g in gathered for w in g[2]]  # damaged entries each rank met, in rank order
        order = {name: [str(p) for p in found.values()] for name, found in entries.items()}
        reports = {name: merge_reports([g[1][name] for g in gathered], order[name]) for name in reports}
        _await_entries(caches, entries, reports)
    for name, report in reports.items():
        for path, reason in report.failed.items():
            warnings.append(f"{name}: {path} could not be processed ({reason}); left out of its set metrics")

    with ThreadPoolExecutor(max_workers=1) as helper:  # no worker process starts from here on
        environment = helper.submit(_run_environment, specs, cfg)  # package versions, git: beside the intervals
        set_values = aggregate(clips, [s.name for s in clip_specs])
        warnings.extend(_undefined_warnings(clips, set_values))
        add_clip_intervals(set_values, clips, cfg)
        for spec in set_specs:
            classes = extractors[spec.extractor].spec.classes
            set_values[spec.name], inputs = evaluate_set_metric(spec, sources, caches[spec.extractor], classes, warnings)
            if inputs is not None:
                add_set_interval(set_values[spec.name], spec, inputs, cfg, warnings)
        environment = environment.result()
    set_values = {s.name: set_values[s.name] for s in specs}  # the order asked for
    n_padded = sum(1 for c in clips if c.gen_padded_s > 0 or c.ref_padded_s > 0)
    if n_padded:
        warnings.append(f"{n_padded} clips were shorter than the {cfg.audio.window_s:g}-s window and were zero-padded (per-clip padding in per_clip records)")
    info = {s.name: {"display": s.display, "higher_is_better": s.higher_is_better, "level": s.level, "description": s.description, "table_scale": s.table_scale} for s in specs}
    prov = provenance(started, time.perf_counter() - t0, environment)
    if extractors:
        prov["extractors"] = {name: {"version": ex.spec.version, "sample_rate": ex.spec.sample_rate, "frontend": ex.spec.frontend,
                                     "weights_sha256": ex.weights_digests(), "device": cfg.device,
                                     "precision": ex.dtype, "frontend_impl": ex.frontend,
                                     "computed": reports[name].computed, "from_cache": reports[name].from_cache} for name, ex in extractors.items()}
    if launch.distributed:
        prov["distributed"] = {"world_size": launch.world_size, "backend": group.backend, "ranks": ranks}
    return Results(
        label=label or Path(gen_dir).resolve().name,
        gen_dir=str(gen_dir), ref_dir=str(ref_dir),
        metrics=set_values, clips=clips, skipped=skipped, ignored=pairing.ignored,
        warnings=warnings, config=to_dict(cfg), metric_info=info, provenance=prov,
    )
