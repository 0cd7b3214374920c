"""Speed of the synchronisation pipeline against a plain librosa + scipy + fastdtw loop.

Both sides do the same work on the same files: decode two 8-s 16-kHz wav files per clip,
onset-strength curves (hop 1280), W-dis and DTW-dis. The peer is the loop most papers' scripts
use: ``librosa.load`` -> ``librosa.onset.onset_strength`` -> ``scipy.stats.wasserstein_distance``
-> ``fastdtw`` (PyPI build). tiva-bench's side is the path ``tiva-bench metrics`` takes for
sync-only metrics: ``tiva_bench.runner.score_folders`` (pairing, decoding, onset strength,
batched W-dis and exact DTW in worker processes that import no librosa, numba or torch, set
means and their bootstrap intervals); its whole wall time is counted, worker start-up included.
Module imports are outside both clocks (the peer's ``import librosa`` and tiva-bench's
``import tiva_bench.runner`` happen before its timer starts). Printed: wall time of each, the
ratio (each side timed ``--repeats`` times, default 3, alternating with the other, each time in a
fresh Python process as a user's run starts; the medians are compared and every repeat's ratio
is printed: single timings on a shared two-core machine swing by 10-20%), CPU time per pair of each on the same 32 pairs in one process (less sensitive to other
load on the machine), the DTW step alone (compiled exact DTW vs fastdtw radius 1), the largest
per-clip disagreement on W-dis and DTW-dis over every clip (against the peer's W-dis and against
exact DTW on librosa's own curves), peak memory (largest single process, parent or worker, sampled
from /proc) at two set sizes (flat memory means clips are streamed), and the machine's load
average before and after the timed runs (other work on the machine slows the two-process side
more than the one-process peer).

    python benchmarks/bench_sync.py            # 1,000 clips (default)
    python benchmarks/bench_sync.py --n 200    # quicker
    python benchmarks/bench_sync.py --runner   # also time score_folders itself
    TIVA_BENCH_FFT=numpy python benchmarks/bench_sync.py   # numpy's FFT instead of MKL's
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_clips(folder: Path, n: int, seed: int) -> None:
    """n generated/reference pairs; the generated clip is the reference's events jittered."""
    import soundfile as sf  # here, not at the top: the timed processes import this module and nothing they do not need

    from tiva_bench.synth_audio import SAMPLE_RATE, random_events, render_clip

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


def pipeline(gen_dir: Path, ref_dir: Path, workers: int) -> dict[str, dict[str, float]]:
    """Exactly what ``tiva-bench metrics GEN REF --metrics w_dis,dtw_dis`` runs: ``score_folders``
    (pairing, the batched sync path in worker processes under the pool supervisor, set means and
    their bootstrap intervals)."""
    from tiva_bench.config import ScoreConfig
    from tiva_bench.runner import score_folders

    results = score_folders(gen_dir, ref_dir, ScoreConfig(metrics=["w_dis", "dtw_dis"], workers=workers))
    return {c.clip: c.values for c in results.clips}


def ours(folder: Path, workers: int) -> tuple[float, dict[str, dict[str, float]]]:
    t0 = time.perf_counter()
    values = pipeline(folder / "gen", folder / "ref", workers)
    return time.perf_counter() - t0, values


def runner(folder: Path, workers: int) -> float:
    from tiva_bench.config import ScoreConfig
    from tiva_bench.runner import score_folders

    t0 = time.perf_counter()
    score_folders(folder / "gen", folder / "ref", ScoreConfig(metrics=["w_dis", "dtw_dis"], workers=workers))
    return time.perf_counter() - t0


def peer_values(folder: Path, n: int) -> dict[str, tuple[float, float]]:
    """W-dis and exact DTW-dis on librosa's own onset strength (not timed): the reference values."""
    import librosa
    import scipy.stats

    from tiva_bench.metrics.functional.sync import dtw_cost

    out = {}
    for i in range(n):
        og, orf = (librosa.onset.onset_strength(y=librosa.load(folder / s / f"c{i:05d}.wav", sr=16000)[0][:128000], sr=16000, hop_length=1280) for s in ("gen", "ref"))
        w = scipy.stats.wasserstein_distance(np.arange(len(og)), np.arange(len(orf)), og, orf)
        out[f"c{i:05d}"] = (w, dtw_cost(og, orf) / len(orf))
    return out


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


def cpu_per_pair(folder: Path, n: int) -> tuple[float, float]:
    """CPU ms per pair of each side on the same ``n`` pairs, in this process, best of three.

    The peer's CPU time includes its BLAS threads; tiva-bench's side runs its chunk scorer with one
    BLAS thread, as its workers do, after the peer's threads have gone idle (untimed pause). Less
    sensitive to other load on the machine than wall time.
    """
    from threadpoolctl import threadpool_limits

    from tiva_bench.config import ScoreConfig
    from tiva_bench.metrics.sync import score_sync_chunk

    cfg = ScoreConfig(metrics=["w_dis", "dtw_dis"])
    pairs = [(f"c{i:05d}", folder / "gen" / f"c{i:05d}.wav", folder / "ref" / f"c{i:05d}.wav") for i in range(n)]

    def ours_chunks():
        with threadpool_limits(1, "blas"):
            for i in range(0, n, 16):
                score_sync_chunk(pairs[i:i + 16], cfg)

    best = {}
    for name, fn in (("peer", lambda: peer_loop(folder, n)), ("ours", ours_chunks)) * 3:
        if name == "ours":  # the peer's BLAS threads spin on for a moment after its last product and
            time.sleep(0.5)  # would be counted in this process's CPU time: let them go idle first
        t0 = time.process_time()
        fn()
        best[name] = min(best.get(name, float("inf")), time.process_time() - t0)
    return 1e3 * best["ours"] / n, 1e3 * best["peer"] / n


def child_code(statement: str, imports: str = "") -> str:
    """``python -c`` source of a fresh process that imports this module (and ``imports``, before
    any clock) and runs ``statement`` under ``if __name__ == "__main__"`` (worker processes may
    re-import the main module)."""
    return (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
            f"from pathlib import Path\nimport bench_sync\n{imports}\n"
            f"if __name__ == '__main__':\n    {statement}\n")


def timed_in_fresh_process(side: str, folder: Path, n: int, workers: int) -> tuple[float, dict]:
    """One timing of ``side`` ("ours" or "peer") in a new Python process, as a user's run starts:
    modules imported before the clock (tiva-bench's ``tiva_bench.runner``; the peer's ``import
    librosa``, inside ``peer_loop`` before its timer), nothing else loaded or warmed. Returns
    ``(seconds, per-clip values)``. Repeating a side inside one process would let its second run
    skip first-call costs (librosa compiles or loads its numba functions on the first call, about
    2 s) and would fork tiva-bench's workers from a process that holds librosa and numba."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timing.json"
        call = f"bench_sync.ours(Path({str(folder)!r}), {workers})" if side == "ours" else f"bench_sync.peer_loop(Path({str(folder)!r}), {n})"
        statement = f"Path({str(out)!r}).write_text(json.dumps(dict(zip(('seconds', 'values'), {call}))))"
        subprocess.run([sys.executable, "-c", child_code(statement, "import tiva_bench.runner" if side == "ours" else "")], check=True)
        record = json.loads(out.read_text())
    return record["seconds"], record["values"]


def _tree_peak_mb(root: int, peaks: dict[int, int]) -> None:
    """Record VmHWM (peak RSS, kB) of ``root`` and every process below it into ``peaks``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
        except OSError:
            pass


def peak_memory_mb(folder: Path, workers: int) -> float:
    """Largest peak RSS (MB) of any process (the parent or a worker) of a fresh scoring run.

    Sampled from /proc every 20 ms (VmHWM is each process's own high-water mark, so a sample
    shortly before a worker exits sees its peak). Needs Linux.
    """
    code = child_code(f"bench_sync.pipeline(Path({str(folder / 'gen')!r}), Path({str(folder / 'ref')!r}), {workers})")
    proc = subprocess.Popen([sys.executable, "-c", code])
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        _tree_peak_mb(proc.pid, peaks)
        time.sleep(0.02)
    if proc.returncode:
        raise RuntimeError(f"the memory run failed with exit code {proc.returncode}")
    return max(peaks.values(), default=0) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    ap.add_argument("--runner", action="store_true", help="also time score_folders (runner.py) on the same files")
    ap.add_argument("--repeats", type=int, default=3, help="time each side this many times, alternating; the medians are compared")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
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
        os.sync()  # the new files reach the disk before either side is timed (no write-back during a timed run)
        time.sleep(1.0)
        load_before = os.getloadavg()
        timings = {"ours": [], "peer": []}  # (seconds, per-clip values) of each repeat
        for r in range(args.repeats):  # alternating, so both sides sample the same stretch of machine time
            for side, label in (("ours", f"tiva-bench (workers={args.workers or os.cpu_count()})"), ("peer", "peer loop (librosa.load + scipy + fastdtw, 1 process)")):
                timings[side].append(timed_in_fresh_process(side, folder, args.n, args.workers))
                print(f"[{r + 1}/{args.repeats}] {label}: {timings[side][-1][0]:.2f} s for {args.n} clips", flush=True)
        load_after = os.getloadavg()
        ours_runs, peer_runs = [t for t, _ in timings["ours"]], [t for t, _ in timings["peer"]]
        t_ours, t_peer = statistics.median(ours_runs), statistics.median(peer_runs)
        v_ours, w_peer = timings["ours"][0][1], timings["peer"][0][1]
        t_runner = runner(folder, args.workers) if args.runner else None
        worst = max(abs(v_ours[k]["w_dis"] - w_peer[k]) / max(abs(w_peer[k]), 1e-12) for k in w_peer)
        n_check = args.n
        exact = peer_values(folder, n_check)
        worst_w = max(abs(v_ours[k]["w_dis"] - w) / abs(w) for k, (w, _) in exact.items())
        worst_d = max(abs(v_ours[k]["dtw_dis"] - d) / abs(d) for k, (_, d) in exact.items())
        cpu_ours, cpu_peer = cpu_per_pair(folder, min(args.n, 32))
        n_dtw = min(args.n, 300)
        t_exact, t_fast = dtw_step(folder, n_dtw)
        mem_small, mem_big = peak_memory_mb(small, args.workers), peak_memory_mb(folder, args.workers)
    from tiva_bench.metrics.functional.onset_strength import fft_backend

    numbers = {
        "n_clips": args.n, "cpu_count": os.cpu_count(), "fft_library": fft_backend(),
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before], "load_average_1_5_15_min_after": [round(x, 2) for x in load_after],
        "repeats": args.repeats, "ours_s": round(t_ours, 3), "peer_s": round(t_peer, 3), "pipeline_speedup": round(t_peer / t_ours, 2),
        "ours_runs_s": [round(t, 3) for t in ours_runs], "peer_runs_s": [round(t, 3) for t in peer_runs],
        "speedup_per_repeat": [round(p / o, 2) for o, p in zip(ours_runs, peer_runs)],
        "cpu_ms_per_pair_ours": round(cpu_ours, 2), "cpu_ms_per_pair_peer": round(cpu_peer, 2), "cpu_ratio": round(cpu_peer / cpu_ours, 2),
        "dtw_exact_ms_per_pair": round(1e3 * t_exact / n_dtw, 4), "fastdtw_ms_per_pair": round(1e3 * t_fast / n_dtw, 3),
        "dtw_speedup_vs_fastdtw": round(t_fast / t_exact, 1),
        "max_rel_diff_w_dis_vs_peer": worst,
        f"max_rel_diff_w_dis_vs_librosa_odf_{n_check}_clips": worst_w,
        f"max_rel_diff_dtw_dis_vs_librosa_odf_{n_check}_clips": worst_d,
        f"peak_rss_mb_{max(1, args.n // 5)}_clips": round(mem_small, 1), f"peak_rss_mb_{args.n}_clips": round(mem_big, 1),
    }
    if t_runner is not None:
        numbers["runner_score_folders_s"] = round(t_runner, 3)
    print(json.dumps(numbers, indent=2))
    print(f"pipeline: {numbers['pipeline_speedup']}x the peer loop (medians of {args.repeats}; each repeat: {numbers['speedup_per_repeat']}; {numbers['fft_library']} FFT; CPU per pair: {numbers['cpu_ratio']}x); DTW step: {numbers['dtw_speedup_vs_fastdtw']}x fastdtw; "
          f"peak memory {mem_small:.0f} MB ({max(1, args.n // 5)} clips) / {mem_big:.0f} MB ({args.n} clips)")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
