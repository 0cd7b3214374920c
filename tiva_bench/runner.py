"""Score folders: pair -> decode once per clip -> per-clip metric groups -> aggregate -> Results.

Clips are scored in worker processes (``workers``; 0 = one per CPU core). One bad clip never stops
a run: decoding problems become ``skipped`` entries with a one-line reason, undefined metric values
become NaN with a recorded reason, and an unexpected error inside one metric group is recorded for
that clip and reported as a warning.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import warnings as warnings_module
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.extractors import EXTRACTORS, get_extractor
from tiva_bench.metrics.registry import GROUPS, SET_FUNCTIONS, MetricSpec, resolve_metrics
from tiva_bench.core.audio import AudioClip
from tiva_bench.features import FeatureCollector
from tiva_bench.config import ScoreConfig, to_dict
from tiva_bench.core.errors import InputError, NothingToScoreError
from tiva_bench.pairing import Pair, pair_folders
from tiva_bench.core.results import ClipResult, Results, SetValue, aggregate, provenance, utc_now
from tiva_bench.core.cache import FeatureCache, file_digest
from tiva_bench.core.audio import VIDEO_EXTENSIONS

# worker-process state, set once per worker by _init_worker
_STATE: dict = {}


def _video_for(pair: Pair, videos_dir: str) -> str | None:
    """The video of a clip: ``videos_dir/<key>.<ext>``, else the reference if it is a video, else
    a video beside the reference with the same stem."""

    candidates = []
    if videos_dir:
        candidates += [Path(videos_dir) / f"{pair.key}{ext}" for ext in VIDEO_EXTENSIONS]
    if pair.ref.suffix.lower() in VIDEO_EXTENSIONS:
        candidates.append(pair.ref)
    candidates += [pair.ref.with_suffix(ext) for ext in VIDEO_EXTENSIONS]
    return next((str(c) for c in candidates if c.exists()), None)


def _reference_label(ref_path: Path) -> str | None:
    """The class named in ``<ref>.json`` beside the reference (synthetic metadata), if any."""
    meta = ref_path.with_suffix(".json")
    if not meta.exists():
        return None
    try:
        value = json.loads(meta.read_text()).get("class")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def score_pair(pair: Pair, cfg: ScoreConfig, specs: list[MetricSpec], caches: list[FeatureCache] = ()) -> ClipResult | dict:
    """Score one pair's clip metrics and prepare its set-metric inputs.

    Returns a ``ClipResult`` (with ``extras``: file digests, cached extractor outputs, windowed
    audio for cache misses, and the reference's class label if known), or a skipped-entry dict when a file is
    unusable.
    """
    clips = {}
    for side, path in (("generated", pair.gen), ("reference", pair.ref)):
        try:
            clips[side] = AudioClip.load(path, cfg.audio.window_s, cfg.audio.min_duration_s)
        except InputError as exc:
            fix = f" ({exc.fix})" if exc.fix else ""
            return {"clip": pair.key, "reason": f"{side} file {exc.reason}{fix}", "path": str(path)}
    gen, ref = clips["generated"], clips["reference"]
    result = ClipResult(
        clip=pair.key, gen=str(pair.gen), ref=str(pair.ref), gen_sr=gen.native_sr, ref_sr=ref.native_sr,
        gen_padded_s=round(gen.padded_s, 6), ref_padded_s=round(ref.padded_s, 6),
        gen_silent=gen.is_silent, ref_silent=ref.is_silent,
    )
    clip_specs = [s for s in specs if s.level == "clip"]
    wanted = {s.name for s in clip_specs}
    for group in dict.fromkeys(s.group for s in clip_specs):
        names = [s.name for s in clip_specs if s.group == group]
        try:
            produced = GROUPS.get(group)(gen.at, ref.at, cfg)
        except UndefinedMetric as exc:
            produced = {n: exc for n in names}
        except Exception as exc:  # a bug or an odd signal must not end a 15,000-clip run
            produced = {n: UndefinedMetric(f"error in {group} metrics: {type(exc).__name__}: {exc}") for n in names}
        for name, value in produced.items():
            if name not in wanted:
                continue
            if isinstance(value, UndefinedMetric):
                result.values[name] = math.nan
                result.undefined[name] = str(value)
            else:
                result.values[name] = float(value)
    if caches:
        extras = {"digests": {}, "features": {}, "audio": {}, "label": _reference_label(pair.ref),
                  "video": _video_for(pair, cfg.videos) if any(s.group == "imagebind" for s in specs) else None}
        digests = {"gen": file_digest(pair.gen), "ref": file_digest(pair.ref)}
        for cache in caches:
            for side, clip in (("gen", gen), ("ref", ref)):
                key = (cache.spec.name, side)
                extras["digests"][key] = digests[side]
                cached = cache.get(digests[side])  # missing or damaged entries are recomputed
                if cached is not None:
                    extras["features"][key] = cached
                else:
                    extras["audio"][key] = clip.at(cache.spec.sample_rate)
        result.extras = extras
    return result


def _init_worker(cfg: ScoreConfig, names: list[str], caches: list[FeatureCache]) -> None:
    _STATE["cfg"] = cfg
    _STATE["specs"] = resolve_metrics(names)
    _STATE["caches"] = caches


def _score_in_worker(pair: Pair):
    return score_pair(pair, _STATE["cfg"], _STATE["specs"], _STATE["caches"])


def _pool_context():
    """forkserver where available (workers fork from a server that imported the heavy modules
    once, safe with threads in the parent), else spawn."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "scipy.signal", "librosa", "soxr", "soundfile", "av", "tiva_bench.metrics.registry", "tiva_bench.runner"])
        return ctx
    return mp.get_context("spawn")


def _n_workers(requested: int, n_items: int) -> int:
    n = requested if requested > 0 else (os.cpu_count() or 1)
    return max(1, min(n, n_items))


def iter_scores(pairs: list[Pair], cfg: ScoreConfig, specs: list[MetricSpec], caches: list[FeatureCache] = ()) -> Iterator[ClipResult | dict]:
    """Yield per-pair outcomes in input order, in worker processes when more than one is used."""
    workers = _n_workers(cfg.workers, len(pairs))
    if workers == 1 or len(pairs) < 8:
        for pair in pairs:
            yield score_pair(pair, cfg, specs, caches)
        return
    # one BLAS/OpenMP thread per worker process: the parallelism is across clips
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})
    try:
        ctx = _pool_context()
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg, [s.name for s in specs], list(caches))) as pool:
            chunk = max(1, min(32, len(pairs) // (workers * 8)))
            yield from pool.map(_score_in_worker, pairs, chunksize=chunk)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def score_folders(
    gen_dir: str | Path,
    ref_dir: str | Path,
    cfg: ScoreConfig | None = None,
    label: str | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Results:
    """Score every generated file in ``gen_dir`` against its namesake in ``ref_dir``.

    ``progress`` wraps the outcome iterator (e.g. ``tqdm``). Raises ``NothingToScoreError`` when no
    clip could be scored; otherwise problems are in ``Results.skipped`` / ``Results.warnings``.
    """
    cfg = (cfg or ScoreConfig()).validate()
    specs = resolve_metrics(cfg.metrics)
    clip_specs = [s for s in specs if s.level == "clip"]
    set_specs = [s for s in specs if s.level == "set"]
    started, t0 = utc_now(), time.perf_counter()
    # backbones load first: missing weights fail in seconds, before any decoding
    extractors = {name: get_extractor(name, cfg.device, cfg.batch_size).load() for name in dict.fromkeys(s.extractor for s in set_specs)}
    caches = {name: _feature_cache(ex, cfg) for name, ex in extractors.items()}
    collector = FeatureCollector(extractors, caches, cfg.batch_size)
    pairing = pair_folders(gen_dir, ref_dir, cfg.pairing)
    skipped = [asdict(s) for s in pairing.skipped]
    warnings = list(pairing.warnings)
    clips: list[ClipResult] = []
    outcomes: Iterable = iter_scores(pairing.pairs, cfg, specs, list(caches.values()))
    if progress is not None:
        outcomes = progress(outcomes, total=len(pairing.pairs))
    for outcome in outcomes:
        if isinstance(outcome, ClipResult):
            if outcome.extras is not None:
                collector.add(len(clips), outcome.extras)
                outcome.extras = None
            clips.append(outcome)
        else:
            skipped.append(outcome)
    collector.finish()
    if not clips:
        why = f"{len(skipped)} skipped" if skipped else "no media files found"
        raise NothingToScoreError(f"nothing could be scored in {gen_dir} against {ref_dir} ({why})", "see the skipped reasons above, or check the folder names and --pair-by / --strip-suffix")
    set_values = aggregate(clips, [s.name for s in clip_specs])
    for name, sv in set_values.items():
        if sv.n_undefined:
            reasons: dict[str, int] = {}
            for c in clips:
                if name in c.undefined:
                    reasons[c.undefined[name]] = reasons.get(c.undefined[name], 0) + 1
            top = "; ".join(f"{r} ({k})" for r, k in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
            warnings.append(f"{name}: undefined for {sv.n_undefined} of {len(clips)} clips, left out of the mean: {top}")
    for spec in set_specs:
        set_values[spec.name] = _set_metric(spec, collector, len(clips), warnings)
    set_values = {s.name: set_values[s.name] for s in specs}  # the order asked for
    n_padded = sum(1 for c in clips if c.gen_padded_s > 0 or c.ref_padded_s > 0)
    if n_padded:
        warnings.append(f"{n_padded} clips were shorter than the {cfg.audio.window_s:g}-s window and were zero-padded (per-clip padding in per_clip records)")
    info = {s.name: {"display": s.display, "higher_is_better": s.higher_is_better, "level": s.level, "description": s.description, "table_scale": s.table_scale} for s in specs}
    prov = provenance(started, time.perf_counter() - t0)
    if extractors:
        prov["extractors"] = {name: {"version": ex.spec.version, "sample_rate": ex.spec.sample_rate, "frontend": ex.spec.frontend,
                                     "weights_sha256": ex.weights_digests(), "device": cfg.device,
                                     "computed": collector.n_computed, "from_cache": collector.n_cached} for name, ex in extractors.items()}
    return Results(
        label=label or Path(gen_dir).resolve().name,
        gen_dir=str(gen_dir), ref_dir=str(ref_dir),
        metrics=set_values, clips=clips, skipped=skipped, ignored=pairing.ignored,
        warnings=warnings, config=to_dict(cfg), metric_info=info, provenance=prov,
    )


def _feature_cache(extractor, cfg: ScoreConfig) -> FeatureCache:
    """The cache of one loaded extractor: keyed by everything that changes its outputs."""
    spec = extractor.spec
    settings = {"name": spec.name, "version": spec.version, "sample_rate": spec.sample_rate, "frontend": spec.frontend,
                "window_s": cfg.audio.window_s, "weights_sha256": extractor.weights_digests(), "device": str(cfg.device),
                "dtype": str(getattr(extractor, "dtype", "float32"))}
    cache = FeatureCache(spec.name, settings, cfg.cache_dir or None, cfg.recompute)
    cache.spec = spec
    return cache


def _imagebind_inputs(collector: FeatureCollector, rows: list[int], gen: dict, warnings: list[str]):
    """Replace the reference side by the clips' video embeddings (cached by video content)."""

    extractor = collector.extractors["imagebind"]
    cache = FeatureCache("imagebind_vision", {"version": extractor.spec.version, "frontend": extractor.spec.frontend}, collector.caches["imagebind"].dir.parent.parent)
    kept, video_rows = [], []
    missing = 0
    for position, i in enumerate(rows):
        path = collector.videos.get(i)
        if path is None:
            missing += 1
            continue
        digest = file_digest(path)
        emb = cache.get(digest)
        if emb is None:
            emb = {"embedding": extractor.embed_videos([path])[0]}
            cache.put(digest, emb)
        kept.append(position)
        video_rows.append(emb["embedding"])
    if missing:
        warnings.append(f"imagebind_score: {missing} clips have no video (give --videos DIR); left out")
    if not kept:
        return [], {}, {}
    return [rows[k] for k in kept], {"embedding": gen["embedding"][kept]}, {"embedding": np.stack(video_rows)}


def _set_metric(spec: MetricSpec, collector: FeatureCollector, n_clips: int, warnings: list[str]) -> SetValue:
    """Compute one set metric from the collected extractor outputs (NaN + warning if undefined)."""
    rows, gen, ref = collector.arrays(spec.extractor, n_clips)
    if spec.group == "imagebind":
        rows, gen, ref = _imagebind_inputs(collector, rows, gen, warnings)
    labels = None
    if spec.group == "class_agreement":
        classes = EXTRACTORS.get(spec.extractor).classes
        names = [collector.labels.get(i) for i in rows]
        if names and all(n in classes for n in names):
            labels = np.array([classes.index(n) for n in names])
        else:
            warnings.append(f"{spec.name}: reference classes taken from the classifier's prediction on the reference audio (no <ref>.json class for every clip)")
    try:
        if not rows:
            raise UndefinedMetric("no clip has features")
        with warnings_module.catch_warnings(record=True) as caught:
            warnings_module.simplefilter("always")
            value, std = SET_FUNCTIONS.get(spec.group)(gen, ref, labels)
        warnings.extend(f"{spec.name}: {w.message}" for w in caught)
        return SetValue(value=float(value), std=float(std), n=len(rows), n_undefined=n_clips - len(rows))
    except UndefinedMetric as exc:
        warnings.append(f"{spec.name}: undefined ({exc})")
        return SetValue(value=math.nan, std=math.nan, n=len(rows), n_undefined=n_clips - len(rows))
