"""Collect extractor outputs for every scored clip: cached ones from disk, the rest in batches.

Workers send cached outputs, and the windowed audio of cache misses; this collector batches the audio per extractor
(equal lengths together), runs the extractor, writes each clip's outputs to the cache at once (so
an interrupted run resumes) and keeps the outputs, indexed by clip, for the set metrics.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tiva_bench.core.cache import FeatureCache


class FeatureCollector:
    def __init__(self, extractors: dict, caches: dict[str, FeatureCache], batch_size: int = 16):
        self.extractors = extractors
        self.caches = caches
        self.batch_size = batch_size
        self.pending: dict[str, list] = defaultdict(list)
        # features[extractor][side][clip_index] -> {"embedding": (d,), "logits": (C,)}
        self.features: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: {"gen": {}, "ref": {}})
        self.labels: dict[int, str | None] = {}
        self.videos: dict[int, str] = {}
        self.n_computed = 0
        self.n_cached = 0

    def add(self, index: int, extras: dict) -> None:
        self.labels[index] = extras.get("label")
        if extras.get("video"):
            self.videos[index] = extras["video"]
        for (name, side), row in extras["features"].items():
            self.features[name][side][index] = row
            self.n_cached += 1
        for (name, side), audio in extras["audio"].items():
            self.pending[name].append((index, side, extras["digests"][(name, side)], audio))
            if len(self.pending[name]) >= self.batch_size:
                self.flush(name)

    def flush(self, name: str) -> None:
        items, self.pending[name] = self.pending[name], []
        by_length: dict[int, list] = defaultdict(list)
        for item in items:
            by_length[item[3].shape[-1]].append(item)
        for group in by_length.values():
            outputs = self.extractors[name](np.stack([g[3] for g in group]))
            for k, (index, side, digest, _) in enumerate(group):
                row = {key: value[k] for key, value in outputs.items()}
                self.caches[name].put(digest, row)
                self.features[name][side][index] = row
                self.n_computed += 1

    def finish(self) -> None:
        for name in list(self.pending):
            if self.pending[name]:
                self.flush(name)

    def arrays(self, name: str, n_clips: int) -> tuple[list[int], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Clip indices with both sides present, and stacked gen/ref outputs in that order."""
        feats = self.features[name]
        rows = [i for i in range(n_clips) if i in feats["gen"] and i in feats["ref"]]
        if not rows:
            return rows, {}, {}
        keys = feats["gen"][rows[0]].keys()
        gen = {k: np.stack([feats["gen"][i][k] for i in rows]) for k in keys}
        ref = {k: np.stack([feats["ref"][i][k] for i in rows]) for k in keys}
        return rows, gen, ref
