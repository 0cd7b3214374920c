"""Score folders: pair -> clip metrics (workers) -> extract into the cache -> evaluate from it -> Results.

1. ``pair_folders`` matches generated to reference files (unmatched and unusable files are listed).
2. ``clip_scoring`` decodes each pair once, in worker processes under the pool supervisor, and
   computes the clip metrics (sync, onsets, energy). A file that cannot be decoded, or a clip whose
   worker dies twice, is skipped with its reason; every other clip is scored.
3. ``extract`` fills the content-keyed feature cache for each backbone a set metric needs.
4. ``evaluate`` computes each set metric from the cache only, from the inputs the metric declares.

Backbones are loaded before any decoding, so missing weights fail in seconds.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from tiva_bench.clip_scoring import (init_sync_worker, init_worker, prepare_process, score_pair, score_pair_in_worker,
                                     score_sync_chunk_in_worker, sync_only)
from tiva_bench.config import ScoreConfig, to_dict
from tiva_bench.core.audio import VIDEO_EXTENSIONS
from tiva_bench.core.data import read_class_label
from tiva_bench.core.errors import NothingToScoreError
from tiva_bench.core.files import file_digest
from tiva_bench.core.pool import TaskFailure, n_workers, supervised_map, usable_cpus
from tiva_bench.core.results import ClipResult, Results, SetValue, aggregate, provenance, utc_now
from tiva_bench.evaluate import ClipSources, evaluate_set_metric
from tiva_bench.extract import AUDIO, VIDEO, extract_audio, extract_video, feature_cache
from tiva_bench.metrics.extractors import get_extractor
from tiva_bench.metrics.functional.stats import bootstrap_mean_interval
from tiva_bench.metrics.registry import CLIP_LEVEL, SET_LEVEL, MetricSpec, resolve_metrics
from tiva_bench.pairing import Pair, pair_folders
from tiva_bench.reports.stats_summary import fast_frechet_applies, set_metric_interval

Progress = Callable[..., Iterable]


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
                                               initargs=(cfg, names), on_notice=on_notice):
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
    # one thread per metric: numpy draws, gathers and averages without the GIL, so the metrics'
    # intervals run on separate cores (each is exactly what it is alone: its own generator)
    with ThreadPoolExecutor(max_workers=max(1, min(len(todo), usable_cpus()))) as threads:
        limits = dict(zip(todo, threads.map(lambda v: bootstrap_mean_interval(v, st.resamples, st.confidence, st.seed), todo.values())))
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


def score_folders(gen_dir: str | Path, ref_dir: str | Path, cfg: ScoreConfig | None = None, label: str | None = None,
                  progress: Progress | None = None, on_notice: Callable[[str], None] | None = None) -> Results:
    """Score every generated file in ``gen_dir`` against its namesake in ``ref_dir``.

    ``progress(iterable, total=..., desc=...)`` wraps long loops (e.g. ``tqdm``); ``on_notice``
    receives one-line notices (workers capped, a worker died and its clip is retried). Raises
    ``NothingToScoreError`` when no clip could be scored; otherwise problems are in
    ``Results.skipped`` / ``Results.warnings``.
    """
    cfg = (cfg or ScoreConfig()).validate()
    specs = resolve_metrics(cfg.metrics)
    clip_specs = [s for s in specs if s.level == CLIP_LEVEL]
    set_specs = [s for s in specs if s.level == SET_LEVEL]
    started, t0 = utc_now(), time.perf_counter()
    warnings: list[str] = []
    extractors = {name: get_extractor(name, cfg.device, cfg.batch_size).load() for name in dict.fromkeys(s.extractor for s in set_specs)}
    damaged = lambda path, reason: warnings.append(f"damaged cache entry {path} ({reason}): recomputed")  # noqa: E731
    caches = {name: {AUDIO: feature_cache(ex, cfg, AUDIO, damaged), VIDEO: feature_cache(ex, cfg, VIDEO, damaged)} for name, ex in extractors.items()}

    pairing = pair_folders(gen_dir, ref_dir, cfg.pairing)
    skipped = [asdict(s) for s in pairing.skipped]
    warnings.extend(pairing.warnings)
    clips: list[ClipResult] = []
    sources = ClipSources()
    needs_labels = any("labels" in s.inputs for s in set_specs)  # a sidecar read per clip otherwise
    needs_video = any(VIDEO in s.inputs for s in set_specs)
    outcomes: Iterable = iter_clip_outcomes(pairing.pairs, cfg, specs, on_notice)
    if progress is not None:
        outcomes = progress(outcomes, total=len(pairing.pairs), desc="scoring")
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
        why = f"{len(skipped)} skipped" if skipped else "no media files found"
        error = NothingToScoreError(f"nothing could be scored in {gen_dir} against {ref_dir} ({why})",
                                    "the reasons are listed as 'skipped'; check the folder names and --pair-by / --strip-suffix")
        error.skipped, error.ignored = skipped, pairing.ignored
        raise error

    reports = {}
    for name, extractor in extractors.items():
        needs = {src for s in set_specs if s.extractor == name for src in s.inputs}
        audio_files = {}
        for i, c in enumerate(clips):
            if "gen" in needs:
                audio_files[sources.gen[i]] = Path(c.gen)
            if "ref" in needs or "labels" in needs:
                audio_files[sources.ref[i]] = Path(c.ref)
        report = extract_audio(extractor, caches[name][AUDIO], audio_files, cfg, progress, on_notice)
        if VIDEO in needs:
            video_report = extract_video(extractor, caches[name][VIDEO], sources.video_paths)
            report.computed += video_report.computed
            report.from_cache += video_report.from_cache
            report.failed.update(video_report.failed)
        for path, reason in report.failed.items():
            warnings.append(f"{name}: {path} could not be processed ({reason}); left out of its set metrics")
        reports[name] = report

    set_values = aggregate(clips, [s.name for s in clip_specs])
    warnings.extend(_undefined_warnings(clips, set_values))
    add_clip_intervals(set_values, clips, cfg)
    for spec in set_specs:
        classes = extractors[spec.extractor].spec.classes
        set_values[spec.name], inputs = evaluate_set_metric(spec, sources, caches[spec.extractor], classes, warnings)
        if inputs is not None:
            add_set_interval(set_values[spec.name], spec, inputs, cfg, warnings)
    set_values = {s.name: set_values[s.name] for s in specs}  # the order asked for
    n_padded = sum(1 for c in clips if c.gen_padded_s > 0 or c.ref_padded_s > 0)
    if n_padded:
        warnings.append(f"{n_padded} clips were shorter than the {cfg.audio.window_s:g}-s window and were zero-padded (per-clip padding in per_clip records)")
    info = {s.name: {"display": s.display, "higher_is_better": s.higher_is_better, "level": s.level, "description": s.description, "table_scale": s.table_scale} for s in specs}
    prov = provenance(started, time.perf_counter() - t0)
    if extractors:
        prov["extractors"] = {name: {"version": ex.spec.version, "sample_rate": ex.spec.sample_rate, "frontend": ex.spec.frontend,
                                     "weights_sha256": ex.weights_digests(), "device": cfg.device,
                                     "computed": reports[name].computed, "from_cache": reports[name].from_cache} for name, ex in extractors.items()}
    return Results(
        label=label or Path(gen_dir).resolve().name,
        gen_dir=str(gen_dir), ref_dir=str(ref_dir),
        metrics=set_values, clips=clips, skipped=skipped, ignored=pairing.ignored,
        warnings=warnings, config=to_dict(cfg), metric_info=info, provenance=prov,
    )

