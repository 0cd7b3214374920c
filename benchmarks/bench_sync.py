"""Speed of the synchronisation pipeline against a plain librosa + scipy + fastdtw loop.

Both sides do the same work on the same files: decode two 8-s 16-kHz wav files per clip,
onset-strength curves (hop 1280), W-dis and DTW-dis. The peer is the loop most papers' scripts
use: ``librosa.load`` -> ``librosa.onset.onset_strength`` -> ``scipy.stats.wasserstein_distance``
-> ``fastdtw`` (PyPI build). Printed: wall time of each, the ratio, the DTW step alone (compiled
exact DTW vs fastdtw radius 1), the largest per-clip disagreement on W-dis, and peak memory at two
set sizes (flat memory means the runner streams clips).

    python benchmarks/bench_sync.py            # 1,000 clips (default)
    python benchmarks/bench_sync.py --n 200    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiva_bench.synth_audio import SAMPLE_RATE, random_events, render_clip  # noqa: E402


def make_clips(folder: Path, n: int, seed: int) -> None:
    """n generated/reference pairs; the generated clip is the reference's events jittered."""
    rng = np.random.default_rng(seed)
    for side in ("gen", "ref"):
        (folder / side).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        events = random_events(rng, 8.0)
        jittered = [(c, max(0.0, o + rng.normal(0, 0.15)), d, s, g) for c, o, d, s, g in events]
        sf.write(folder / "ref" / f"c{i:05d}.wav", render_clip(events, 8.0, seed=i), SAMPLE_RATE, subtype="PCM_16")
        sf.write(folder / "gen" / f"c{i:05d}.wav", render_clip(jittered, 8.0, seed=10**6 + i), SAMPLE_RATE, subtype="PCM_16")


def peer_loop(folder: Path, n: int) -> tuple[float, dict[str, float]]:
    import librosa
    import scipy.stats
    from fastdtw import fastdtw

    t0 = time.perf_counter()
    w = {}
    for i in range(n):
        g, _ = librosa.load(folder / "gen" / f"c{i:05d}.wav", sr=16000)
        r, _ = librosa.load(folder / "ref" / f"c{i:05d}.wav", sr=16000)
        og = librosa.onset.onset_strength(y=g[:128000], sr=16000, hop_length=1280)
        orf = librosa.onset.onset_strength(y=r[:128000], sr=16000, hop_length=1280)
        w[f"c{i:05d}"] = scipy.stats.wasserstein_distance(np.arange(len(og)), np.arange(len(orf)), og, orf)
        fastdtw(og, orf, radius=1, dist=lambda a, b: abs(a - b))
    return time.perf_counter() - t0, w


def ours(folder: Path, workers: int) -> tuple[float, dict[str, float]]:
    from tiva_bench.config import ScoreConfig
    from tiva_bench.runner import score_folders

    t0 = time.perf_counter()
    res = score_folders(folder / "gen", folder / "ref", ScoreConfig(metrics=["w_dis", "dtw_dis"], workers=workers))
    return time.perf_counter() - t0, {c.clip: c.values["w_dis"] for c in res.clips}


def dtw_step(folder: Path, n: int) -> tuple[float, float]:
    import librosa
    from fastdtw import fastdtw

    from tiva_bench.metrics.functional.sync import dtw_cost

    odfs = []
    for i in range(n):
        pair = [librosa.onset.onset_strength(y=librosa.load(folder / s / f"c{i:05d}.wav", sr=16000)[0], sr=16000, hop_length=1280) for s in ("gen", "ref")]
        odfs.append(pair)
    dtw_cost(*odfs[0])  # compile outside the timing
    t0 = time.perf_counter()
    for a, b in odfs:
        dtw_cost(a, b)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a, b in odfs:
        fastdtw(a, b, radius=1, dist=lambda x, y: abs(x - y))
    return t_exact, time.perf_counter() - t0


def peak_memory_mb(folder: Path, workers: int) -> float:
    """Peak RSS (MB) of a fresh process scoring ``folder`` (max of parent and its workers)."""
    code = (
        "import resource,sys; sys.path.insert(0, %r)\n"
        "from tiva_bench.config import ScoreConfig; from tiva_bench.runner import score_folders\n"
        "score_folders(%r, %r, ScoreConfig(metrics=['w_dis','dtw_dis'], workers=%d))\n"
        "print(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
    ) % (str(ROOT), str(folder / "gen"), str(folder / "ref"), workers)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"writing {args.n} clip pairs (8 s, 16 kHz wav) ...", flush=True)
        make_clips(folder, args.n, seed=0)
        small = folder / "small"
        small.mkdir()
        for side in ("gen", "ref"):
            (small / side).mkdir()
            for i in range(max(1, args.n // 5)):
                os.link(folder / side / f"c{i:05d}.wav", small / side / f"c{i:05d}.wav")
        t_ours, w_ours = ours(folder, args.workers)
        print(f"tiva-bench (workers={args.workers or os.cpu_count()}): {t_ours:.2f} s for {args.n} clips", flush=True)
        t_peer, w_peer = peer_loop(folder, args.n)
        print(f"peer loop (librosa.load + scipy + fastdtw, 1 process): {t_peer:.2f} s", flush=True)
        worst = max(abs(w_ours[k] - w_peer[k]) / max(abs(w_peer[k]), 1e-12) for k in w_peer)
        n_dtw = min(args.n, 300)
        t_exact, t_fast = dtw_step(folder, n_dtw)
        mem_small, mem_big = peak_memory_mb(small, args.workers), peak_memory_mb(folder, args.workers)
    numbers = {
        "n_clips": args.n, "cpu_count": os.cpu_count(),
        "ours_s": round(t_ours, 3), "peer_s": round(t_peer, 3), "pipeline_speedup": round(t_peer / t_ours, 2),
        "dtw_exact_ms_per_pair": round(1e3 * t_exact / n_dtw, 4), "fastdtw_ms_per_pair": round(1e3 * t_fast / n_dtw, 3),
        "dtw_speedup_vs_fastdtw": round(t_fast / t_exact, 1),
        "max_rel_diff_w_dis_vs_peer": worst,
        f"peak_rss_mb_{max(1, args.n // 5)}_clips": round(mem_small, 1), f"peak_rss_mb_{args.n}_clips": round(mem_big, 1),
    }
    print(json.dumps(numbers, indent=2))
    print(f"pipeline: {numbers['pipeline_speedup']}x the peer loop; DTW step: {numbers['dtw_speedup_vs_fastdtw']}x fastdtw")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
