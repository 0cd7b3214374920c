"""Stage 3 of scoring: set metrics computed from the feature cache only.

Each set metric declares its inputs (``MetricSpec.inputs``) and owns its computation
(``MetricSpec.compute``); this module only gathers the declared inputs, row-aligned over the
clips that have all of them, and records why a value is undefined. It has no metric-specific branch.
"""

from __future__ import annotations

import math
import warnings as warnings_module
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiva_bench.core.cache import FeatureCache
from tiva_bench.core.results import SetValue
from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.extractors.base import EXTRACTORS
from tiva_bench.metrics.registry import METRICS, MetricSpec, SetInputs


@dataclass
class ClipSources:
    """Per scored clip (row-aligned with the results' clips): the cache digests of its generated
    audio, reference audio and video (None when there is no video), and its reference class label."""

    gen: list[str] = field(default_factory=list)
    ref: list[str] = field(default_factory=list)
    video: list[str | None] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    video_paths: dict[str, Path] = field(default_factory=dict)  # video digest -> file


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def gather_inputs(spec: MetricSpec, sources: ClipSources, caches: dict[str, FeatureCache], classes: tuple[str, ...]) -> tuple[SetInputs, int, list[str]]:
    """The metric's declared inputs over the clips that have all of them; returns
    ``(inputs, n_rows, notes)`` where notes say which clips were left out and why."""
    n_clips = len(sources.gen)
    per_source: dict[str, list] = {}
    notes = []
    for source in spec.inputs:
        if source == "labels":
            continue
        cache = caches[source if source == "video" else "audio"]
        digests = getattr(sources, source)
        per_source[source] = [cache.get(d) if d is not None else None for d in digests]
        lacking = sum(1 for row in per_source[source] if row is None)
        if lacking and source == "video":
            notes.append(f"{lacking} clips have no video (give --videos DIR); left out")
        elif lacking:
            notes.append(f"{lacking} clips have no {source} features (their files could not be processed); left out")
    rows = [i for i in range(n_clips) if all(per_source[s][i] is not None for s in per_source)]
    inputs = SetInputs()
    if rows:
        for source, values in per_source.items():
            setattr(inputs, source, _stack([values[i] for i in rows]))
    if "labels" in spec.inputs:
        names = [sources.labels[i] for i in rows]
        if names and all(n in classes for n in names):
            inputs.labels = np.array([classes.index(n) for n in names])
        unknown = sorted({n for n in names if n is not None and n not in classes})
        if unknown:
            notes.append(unknown_classes_note(spec, unknown, classes))
    return inputs, len(rows), notes


def unknown_classes_note(spec: MetricSpec, unknown: list[str], classes: tuple[str, ...]) -> str:
    """Why reference labels were not used: the metric's classifier does not know them; names the
    metrics whose classifier does (e.g. ``class_acc2`` for synthetic benchmark v2)."""
    knowing = [name for name in METRICS if METRICS.get(name).group == spec.group and METRICS.get(name).extractor in EXTRACTORS
               and set(unknown) <= set(EXTRACTORS.get(METRICS.get(name).extractor).classes or ())]
    return (f"the reference classes {', '.join(unknown)} are unknown to {spec.extractor} (it knows {', '.join(classes)}), so the "
            f"video classes were taken from its prediction on the reference audio"
            + (f"; use {' or '.join(knowing)} for these references" if knowing else ""))


def evaluate_set_metric(spec: MetricSpec, sources: ClipSources, caches: dict[str, FeatureCache], classes: tuple[str, ...],
                        warnings: list[str]) -> tuple[SetValue, SetInputs | None]:
    """One set metric from the cache, and the inputs it was computed from (None when undefined);
    NaN with a warning when undefined, warnings of the maths kept."""
    n_clips = len(sources.gen)
    inputs, n_rows, notes = gather_inputs(spec, sources, caches, classes)
    warnings.extend(f"{spec.name}: {note}" for note in notes)
    try:
        if not n_rows:
            raise UndefinedMetric("no clip has features")
        with warnings_module.catch_warnings(record=True) as caught:
            warnings_module.simplefilter("always")
            value, std = spec.compute(inputs)
        warnings.extend(f"{spec.name}: {w.message}" for w in caught)
        return SetValue(value=float(value), std=float(std), n=n_rows, n_undefined=n_clips - n_rows), inputs
    except UndefinedMetric as exc:
        warnings.append(f"{spec.name}: undefined ({exc})")
        return SetValue(value=math.nan, std=math.nan, n=n_rows, n_undefined=n_clips - n_rows), None
