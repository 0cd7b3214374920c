"""Per-video CLIP features for the TiVA model, cached like the audio features and shardable.

For each video: one TiVA window of frames at 10 fps -> CLIP pre-processing -> the frozen
ViT-B/16 -> CLS tokens ``(T, L, 768)`` and pooled patch tokens ``(T, L, g*g, 768)`` of layers
``L = (4, 8, 11)``, stored as float16 in one ``.npz`` per video under the feature cache, keyed by
the encoder's weights, layers, pooling, frame rate, window, window policy and the video's content
hash. ``--shard i/N`` runs the i-th of N disjoint parts, so N processes (or GPUs) share a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiva_bench.core.cache import FeatureCache, file_digest
from tiva_bench.core.data import FPS, WINDOW_S, VideoItem, load_av_window
from tiva_bench.core.errors import InputError
from tiva_bench.models.tiva.frame_encoder import CLIPFrames


@dataclass
class ExtractionSummary:
    computed: int = 0
    cached: int = 0
    skipped: list[dict] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)


def clip_cache(encoder, fps: float = FPS, window_s: float = WINDOW_S, policy: str = "pad", root=None, recompute=False) -> FeatureCache:
    """The cache for one encoder configuration (weights identity = the checkpoint's SHA-256)."""
    weights = encoder.checkpoint
    if weights != "random-init":
        weights = file_digest(weights)
    settings = {"encoder": "clip_vit_b16", "weights": weights, "layers": list(encoder.layers), "patch_grid": encoder.patch_grid,
                "fps": fps, "window_s": window_s, "policy": policy, "preprocess": "clip-bicubic-224-centre"}
    return FeatureCache("clip_vit_b16", settings, root, recompute)


def encode_frames(encoder, frames: np.ndarray, device: str = "cpu", batch_frames: int = 128) -> dict[str, np.ndarray]:
    """uint8 frames ``(T, H, W, 3)`` -> ``{"cls": (T, L, 768), "patch": (T, L, g*g, 768)}`` float16,
    through the model's own frame encoder (``CLIPFrames``: CLIP pre-processing, then the ViT)."""
    cls, patch = CLIPFrames(encoder.to(device)).encode_frames(frames, batch_frames)
    return {"cls": cls.float().cpu().numpy().astype(np.float16), "patch": patch.float().cpu().numpy().astype(np.float16)}


def extract_clip_features(items: list[VideoItem], encoder, cache: FeatureCache, device: str = "cpu", batch_frames: int = 128, progress=None) -> ExtractionSummary:
    """Fill ``cache`` for ``items``; a bad video is listed in ``summary.skipped`` and the sweep goes on."""
    s = cache.settings
    summary = ExtractionSummary()
    iterator = progress(items, total=len(items)) if progress else items
    for item in iterator:
        try:
            digest = file_digest(item.path)
            if cache.has(digest):
                summary.cached += 1
                continue
            window = load_av_window(item, fps=s["fps"], window_s=s["window_s"], policy=s["policy"], need_audio=False)
        except (InputError, OSError) as exc:
            summary.skipped.append({"clip": item.key, "path": str(item.path), "reason": getattr(exc, "reason", str(exc))})
            continue
        outputs = encode_frames(encoder, window.frames, device, batch_frames)
        outputs["padded_s"] = np.float32(window.padded_s)
        cache.put(digest, outputs)
        summary.computed += 1
        if window.notes:
            summary.notes[item.key] = window.notes
    return summary


def load_clip_features(cache: FeatureCache, path: str | Path) -> dict[str, np.ndarray] | None:
    """Cached features of one video (None if not extracted yet)."""
    return cache.get(file_digest(path))

