"""Datasets of videos for the models: any folder of videos, VGGSound, and the synthetic benchmark.

An item is a video file with a key (its name), and where known its class label and split. Loading
an item gives one TiVA window: frames at 10 fps and mono audio at 16 kHz, exactly ``window_s``
(10.24 s) long, with a policy for shorter clips (pad, loop or skip) and the first window of longer
ones. Every problem is an ``InputError`` with the file and a reason, so a sweep over thousands of
videos lists the bad ones and goes on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiva_bench.core.audio import VIDEO_EXTENSIONS, decode_audio, resample
from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.video import decode_frames, fit_window

FPS = 10
SAMPLE_RATE = 16000
WINDOW_S = 10.24


@dataclass(frozen=True)
class VideoItem:
    key: str
    path: Path
    label: str | None = None
    split: str | None = None


@dataclass
class AVWindow:
    """One window: frames ``(T, H, W, 3)`` uint8 at ``fps``, audio ``(n,)`` float32 at ``sr``
    (None when not asked for), the padding added, and notes on what was adapted."""

    key: str
    frames: np.ndarray
    audio: np.ndarray | None
    padded_s: float
    notes: list[str] = field(default_factory=list)


def read_class_label(media_path: str | Path) -> str | None:
    """The class named in ``<media>.json`` beside a file (the synthetic benchmark's metadata), if any."""
    meta = Path(media_path).with_suffix(".json")
    try:
        value = json.loads(meta.read_text()).get("class")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def folder_items(root: str | Path) -> list[VideoItem]:
    """Every video below ``root`` (recursive, sorted); key = path relative to ``root`` without
    extension; a ``<video>.json`` with a "class" (synthetic metadata) gives the label."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "video folder does not exist or is not a folder")
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS):
        items.append(VideoItem(path.relative_to(root).with_suffix("").as_posix(), path, read_class_label(path), None))
    return items


def read_vggsound_csv(csv_path: str | Path) -> list[tuple[str, int, str, str]]:
    """Rows ``(youtube_id, start_seconds, label, split)`` of VGGSound's ``vggsound.csv`` (no header)."""
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 4:
                raise InputError(csv_path, f"line {n} has {len(row)} fields, expected 4 (ytid,start,label,split)")
            try:
                rows.append((row[0], int(float(row[1])), row[2], row[3].strip()))
            except ValueError:
                if n == 1:
                    continue  # a header line
                raise InputError(csv_path, f"line {n}: start time {row[1]!r} is not a number") from None
    return rows


def vggsound_name(ytid: str, start_s: int) -> str:
    """The file stem of a VGGSound clip: ``{ytid}_{start:06d}`` (start in whole seconds)."""
    return f"{ytid}_{int(start_s):06d}"


def vggsound_items(csv_path: str | Path, root: str | Path, split: str | None = None) -> tuple[list[VideoItem], list[str]]:
    """Items of the official split found below ``root`` (any depth), and the names not found."""
    if split not in (None, "train", "test"):
        raise ConfigError(f"VGGSound splits are 'train' and 'test', got {split!r}")
    on_disk = {p.stem: p for p in Path(root).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS}
    items, missing = [], []
    for ytid, start, label, row_split in read_vggsound_csv(csv_path):
        if split and row_split != split:
            continue
        name = vggsound_name(ytid, start)
        if name in on_disk:
            items.append(VideoItem(name, on_disk[name], label, row_split))
        else:
            missing.append(name)
    return items, missing


def shard(items: list, index: int, count: int) -> list:
    """Items ``index, index + count, ...`` (stable: every item lands in exactly one shard)."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard must be i/N with 0 <= i < N, got {index}/{count}")
    return items[index::count]


def load_av_window(item: VideoItem, fps: float = FPS, sr: int = SAMPLE_RATE, window_s: float = WINDOW_S, policy: str = "pad", need_audio: bool = True, min_side: int = 32) -> AVWindow:
    """Decode one window of frames and audio (see the module docstring).

    need_audio: False for generation from silent videos (audio is then None). ``min_side``:
    frames smaller than this on their short side are refused as too small to see anything.
    """
    if policy not in ("pad", "loop", "skip"):
        raise ConfigError(f"window policy must be pad, loop or skip, got {policy!r}")
    video = decode_frames(item.path, fps=fps, start_s=0.0, duration_s=window_s)
    notes = []
    h, w = video.frames.shape[1:3]
    if min(h, w) < min_side:
        raise InputError(item.path, f"frames are {w}x{h}, smaller than {min_side} px", "use a larger video")
    if h > w:
        notes.append(f"portrait {w}x{h}: centre crop keeps the middle square")
    if video.source_fps and abs(video.source_fps - round(video.source_fps)) > 1e-3:
        notes.append(f"non-integer frame rate {video.source_fps:.3f}: frames sampled by timestamp")
    audio = None
    if need_audio:
        samples, native_sr = decode_audio(item.path)
        audio = resample(samples, native_sr, sr)
    frames = video.frames
    try:
        # without audio only the frames decide whether the clip is short
        placeholder = np.zeros(int(round(window_s * sr)), np.float32)
        frames, fitted, padded = fit_window(frames, audio if audio is not None else placeholder, fps, sr, window_s, policy)
    except ValueError as exc:
        raise InputError(item.path, str(exc), "use --window-policy pad or loop") from None
    if padded > 0:
        notes.append(f"{padded:.2f} s shorter than the window: {policy}")
    return AVWindow(item.key, frames, fitted if need_audio else None, padded, notes)
