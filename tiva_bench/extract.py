"""Stage 2 of scoring: fill the content-keyed feature cache for every backbone a set metric needs.

Files are decoded and resampled in worker processes (the pool supervisor; a file that kills its
worker twice is reported, never fatal), forwarded through the backbone in batches in this process
(on ``cfg.device``), and each file's outputs are written to the cache at once, so an interrupted
run resumes from what finished. Evaluation (``tiva_bench.evaluate``) then reads only the cache.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tiva_bench.config import ScoreConfig
from tiva_bench.core.audio import AudioClip
from tiva_bench.core.cache import FeatureCache
from tiva_bench.core.errors import InputError
from tiva_bench.core.feeder import read_ahead
from tiva_bench.core.pool import TaskFailure, supervised_map
from tiva_bench.metrics.extractors import AudioExtractor

AUDIO, VIDEO = "audio", "video"


@dataclass
class ExtractionReport:
    """What one extraction pass did: counts, and files that could not be processed (path -> reason)."""

    computed: int = 0
    from_cache: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def merge_reports(parts: list[ExtractionReport], order: list[str]) -> ExtractionReport:
    """One report from the reports of several ranks: counts summed, failed files listed in
    ``order`` (the order one process meets them; any others after them)."""
    failed = {path: reason for part in parts for path, reason in part.failed.items()}
    ordered = {path: failed[path] for path in order if path in failed}
    ordered.update((path, reason) for path, reason in failed.items() if path not in ordered)
    return ExtractionReport(sum(p.computed for p in parts), sum(p.from_cache for p in parts), ordered)


def feature_cache(extractor: AudioExtractor, cfg: ScoreConfig, kind: str = AUDIO, on_damaged: Callable | None = None) -> FeatureCache:
    """The cache of one loaded extractor's ``kind`` outputs, keyed by everything that changes them:
    name, version, sample rate, front-end, scoring window, weights' SHA-256, device and dtype.

    ``cfg.recompute`` is not the cache's business: the extraction stage ignores existing entries
    and rewrites them, and evaluation then reads the fresh ones."""
    spec = extractor.spec
    settings = {"name": spec.name, "kind": kind, "version": spec.version, "sample_rate": spec.sample_rate, "frontend": spec.frontend,
                "window_s": cfg.audio.window_s if kind == AUDIO else None, "weights_sha256": extractor.weights_digests(),
                "device": str(cfg.device), "dtype": str(getattr(extractor, "dtype", "float32"))}
    name = spec.name if kind == AUDIO else f"{spec.name}_{kind}"
    expect = {key: None for key in spec.outputs} if kind == AUDIO else {"embedding": None}
    return FeatureCache(name, settings, cfg.cache_dir or None, expect=expect, on_damaged=on_damaged)


def decode_window(job: tuple[str, int, float, float]) -> np.ndarray:
    """``(path, sample_rate, window_s, min_duration_s)`` -> the mono float32 window (worker side)."""
    path, sample_rate, window_s, min_duration_s = job
    return AudioClip.load(path, window_s, min_duration_s).at(sample_rate)


def _flush(extractor: AudioExtractor, cache: FeatureCache, batch: list[tuple[str, np.ndarray]], report: ExtractionReport) -> None:
    by_length: dict[int, list] = defaultdict(list)
    for digest, wav in batch:
        by_length[wav.shape[-1]].append((digest, wav))
    for group in by_length.values():
        outputs = extractor(np.stack([wav for _, wav in group]))
        for k, (digest, _) in enumerate(group):
            cache.put(digest, {key: value[k] for key, value in outputs.items()})
            report.computed += 1


def extract_audio(extractor: AudioExtractor, cache: FeatureCache, files: dict[str, Path], cfg: ScoreConfig,
                  progress: Callable | None = None, on_notice: Callable[[str], None] | None = None) -> ExtractionReport:
    """Make sure ``cache`` holds the extractor's outputs for every ``digest -> path`` in ``files``
    (all of them recomputed and rewritten when ``cfg.recompute``)."""
    report = ExtractionReport()
    missing = []
    for digest, path in files.items():
        if not cfg.recompute and cache.get(digest) is not None:
            report.from_cache += 1
        else:
            missing.append((digest, path))
    if not missing:
        return report
    jobs = [(str(path), extractor.spec.sample_rate, cfg.audio.window_s, cfg.audio.min_duration_s) for _, path in missing]
    # read ahead: workers keep decoding while the backbone computes a batch
    outcomes = read_ahead(supervised_map(decode_window, jobs, workers=cfg.workers, on_notice=on_notice), depth=2 * cfg.batch_size)
    if progress is not None:
        outcomes = progress(outcomes, total=len(jobs), desc=f"{extractor.spec.name} features")
    batch: list[tuple[str, np.ndarray]] = []
    for index, wav in outcomes:
        digest, path = missing[index]
        if isinstance(wav, TaskFailure):
            report.failed[str(path)] = wav.reason
            continue
        batch.append((digest, wav))
        if len(batch) >= cfg.batch_size:
            _flush(extractor, cache, batch, report)
            batch = []
    if batch:
        _flush(extractor, cache, batch, report)
    return report


def extract_video(extractor: AudioExtractor, cache: FeatureCache, files: dict[str, Path], recompute: bool = False) -> ExtractionReport:
    """Video embeddings (``extractor.embed_videos``) for every ``digest -> video path`` not cached
    (or every one, rewritten, when ``recompute``)."""
    report = ExtractionReport()
    for digest, path in files.items():
        if not recompute and cache.get(digest) is not None:
            report.from_cache += 1
            continue
        try:
            embedding = extractor.embed_videos([path])[0]
        except InputError as exc:
            report.failed[str(path)] = exc.reason
            continue
        cache.put(digest, {"embedding": embedding})
        report.computed += 1
    return report
