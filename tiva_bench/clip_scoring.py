"""Stage 1 of scoring: decode each pair once and compute its clip metrics (runs in worker processes).

This module imports no backbone and no torch: sync-only runs start light workers. Each outcome is a
``ClipResult`` (values, undefined reasons, native rates, padding), or a skipped entry
``{"clip", "reason", "path"}`` when a file cannot be scored. The files' content digests travel
beside the result (they key the feature cache for the extraction stage).
"""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass

from tiva_bench.config import ScoreConfig
from tiva_bench.core import jit_cache
from tiva_bench.core.audio import AudioClip
from tiva_bench.core.errors import InputError
from tiva_bench.core.files import file_digest
from tiva_bench.core.pool import retain_freed_memory
from tiva_bench.core.results import ClipResult
from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.jit_warmup import JIT_TARGETS
from tiva_bench.metrics.registry import CLIP_LEVEL, MetricSpec, resolve_metrics
from tiva_bench.metrics.sync import score_sync_chunk
from tiva_bench.pairing import Pair


@dataclass
class ClipOutcome:
    """One pair's result (or skipped entry) and its files' SHA-256 digests (None when skipped)."""

    result: ClipResult | None
    skipped: dict | None = None
    gen_digest: str | None = None
    ref_digest: str | None = None


def compute_clip_metrics(gen: AudioClip, ref: AudioClip, cfg: ScoreConfig, specs: list[MetricSpec]) -> tuple[dict[str, float], dict[str, str]]:
    """Values and undefined-reasons of the clip metrics in ``specs`` (each group computed once).

    An ``UndefinedMetric`` gives NaN with its reason; any other exception inside one group is
    recorded for that clip (a bug or an odd signal must not end a 15,000-clip run).
    """
    values: dict[str, float] = {}
    undefined: dict[str, str] = {}
    clip_specs = [s for s in specs if s.level == CLIP_LEVEL]
    wanted = {s.name for s in clip_specs}
    for group in dict.fromkeys(s.group for s in clip_specs):
        group_specs = [s for s in clip_specs if s.group == group]
        try:
            produced = group_specs[0].compute(gen.at, ref.at, cfg)
        except UndefinedMetric as exc:
            produced = {s.name: exc for s in group_specs}
        except Exception as exc:
            produced = {s.name: UndefinedMetric(f"error in {group} metrics: {type(exc).__name__}: {exc}") for s in group_specs}
        for name, value in produced.items():
            if name not in wanted:
                continue
            if isinstance(value, UndefinedMetric):
                values[name] = math.nan
                undefined[name] = str(value)
            else:
                values[name] = float(value)
    return values, undefined


def score_pair(pair: Pair, cfg: ScoreConfig, specs: list[MetricSpec]) -> ClipOutcome:
    """Decode both files of ``pair`` (once each), compute the clip metrics, hash the files."""
    clips = {}
    for side, path in (("generated", pair.gen), ("reference", pair.ref)):
        try:
            clips[side] = AudioClip.load(path, cfg.audio.window_s, cfg.audio.min_duration_s)
        except InputError as exc:
            fix = f" ({exc.fix})" if exc.fix else ""
            return ClipOutcome(None, {"clip": pair.key, "reason": f"{side} file {exc.reason}{fix}", "path": str(path)})
    gen, ref = clips["generated"], clips["reference"]
    values, undefined = compute_clip_metrics(gen, ref, cfg, specs)
    result = ClipResult(
        clip=pair.key, gen=str(pair.gen), ref=str(pair.ref), values=values, undefined=undefined,
        gen_sr=gen.native_sr, ref_sr=ref.native_sr, gen_padded_s=round(gen.padded_s, 6), ref_padded_s=round(ref.padded_s, 6),
        gen_silent=gen.is_silent, ref_silent=ref.is_silent,
    )
    return ClipOutcome(result, None, file_digest(pair.gen), file_digest(pair.ref))


# worker-process state, set once per worker by init_worker
_STATE: dict = {}


def prepare_process() -> None:
    """Load numba's compiled functions safely (under the cache lock) before any clip is scored."""
    jit_cache.ensure_ready(JIT_TARGETS)


def init_worker(cfg: ScoreConfig, names: list[str]) -> None:
    prepare_process()
    _STATE["cfg"] = cfg
    _STATE["specs"] = resolve_metrics(names)


def score_pair_in_worker(pair: Pair) -> ClipOutcome:
    return score_pair(pair, _STATE["cfg"], _STATE["specs"])


def init_sync_worker(cfg: ScoreConfig, names: list[str]) -> None:
    """Sync-only workers: the batched path needs no compiled (numba) function; freed buffers are
    kept for the next chunk (``retain_freed_memory``: no page faults on every clip)."""
    if multiprocessing.parent_process() is not None:  # a worker process, not a caller running inline
        retain_freed_memory()
    _STATE["cfg"] = cfg
    _STATE["names"] = list(names)


def score_sync_chunk_in_worker(chunk: list[Pair]) -> list[ClipOutcome]:
    return [to_outcome(o) for o in score_sync_chunk(chunk, _STATE["cfg"], _STATE["names"])]


def to_outcome(outcome: ClipResult | dict) -> ClipOutcome:
    """A batched scorer's result (``ClipResult`` or skipped entry) as a ``ClipOutcome``."""
    return ClipOutcome(outcome, None) if isinstance(outcome, ClipResult) else ClipOutcome(None, outcome)


def sync_only(specs: list[MetricSpec], cfg: ScoreConfig) -> bool:
    """True when every metric asked for is W-dis / DTW-dis on the fast onset strength: the batched path applies."""
    return bool(specs) and all(s.level == CLIP_LEVEL and s.group == "sync" for s in specs) and cfg.sync.odf_impl == "fast"
