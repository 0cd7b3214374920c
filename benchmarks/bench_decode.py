"""Decoding speed for the models: frames at 10 fps + audio at 16 kHz from 10-s 25-fps mp4 clips.

Ours: ``tiva_bench.core.data.load_av_window`` (timestamp-based frame picking that converts only the
frames it keeps, FFmpeg frame threads, soxr resampling) in worker processes. Peer, measured in the
same run: the naive loop -- convert every decoded frame to RGB, keep every 2.5th, decode the audio
track and resample with librosa -- in one process, and ours in one process for a per-core ratio.

    python benchmarks/bench_decode.py              # 40 clips, 320x240
    python benchmarks/bench_decode.py --n 100 --size 640x360
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiva_bench.core.data import VideoItem, load_av_window  # noqa: E402
from tiva_bench.core.media_write import write_video  # noqa: E402


def make_clip(path: Path, seed: int, width: int, height: int) -> None:
    rng = np.random.default_rng(seed)
    n = 250  # 10 s at 25 fps
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n, height, width, 3), np.uint8)
    base = rng.integers(0, 60, size=(height // 8, width // 8, 3)).repeat(8, 0).repeat(8, 1)
    for i in range(n):
        cx, cy = (i * 5 + seed * 37) % width, (height // 2 + int(40 * np.sin(i / 10))) % height
        img = base.copy()
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 900] = (200, 80 + i % 100, 40)
        frames[i] = img
    t = np.arange(441000) / 44100
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    write_video(path, frames, 25, audio, 44100)


def ours_one(path: str) -> int:
    w = load_av_window(VideoItem("x", Path(path)), window_s=10.0)
    return w.frames.shape[0]


def naive_one(path: str) -> int:
    import av
    import librosa

    with av.open(path) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    keep = [frames[int(k * 2.5)] for k in range(int(len(frames) / 2.5))]
    with av.open(path) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(stream)]
        audio = np.concatenate(chunks, axis=1).mean(axis=0)
        rate = stream.rate
    librosa.resample(audio, orig_sr=rate, target_sr=16000)
    return len(keep)


def timed(fn, paths, workers):
    t0 = time.perf_counter()
    if workers == 1:
        counts = [fn(p) for p in paths]
    else:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(pool.map(fn, paths))
    return time.perf_counter() - t0, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            path = Path(tmp) / f"c{i:04d}.mp4"
            make_clip(path, i, width, height)
            paths.append(str(path))
        ours_one(paths[0])
        naive_one(paths[0])  # warm imports
        t_ours, counts = timed(ours_one, paths, args.workers)
        t_ours1, _ = timed(ours_one, paths, 1)
        t_naive, naive_counts = timed(naive_one, paths, 1)
    assert set(counts) == {100} and set(naive_counts) == {100}, (set(counts), set(naive_counts))
    numbers = {
        "clips": args.n, "size": args.size, "workers": args.workers,
        "ours_clips_per_s": round(args.n / t_ours, 1),
        "ours_1proc_clips_per_s": round(args.n / t_ours1, 1),
        "naive_1proc_clips_per_s": round(args.n / t_naive, 1),
        "speedup_per_process": round(t_naive / t_ours1, 2),
    }
    print(json.dumps(numbers, indent=2))
    print(f"ours: {numbers['ours_clips_per_s']} clips/s on {args.workers} processes; naive loop: {numbers['naive_1proc_clips_per_s']} clips/s; "
          f"{numbers['speedup_per_process']}x the naive loop per process")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
