"""Backbone extraction: tiva-bench's batched path against the clip-at-a-time peer, per backbone.

For each backbone, in one run on one device, on the same 10-s files (44.1-kHz 16-bit WAV, so
decoding and resampling are part of the work):

  (a) peer, what evaluation scripts do: one process decodes a file, resamples it, runs the
      reference front-end clip by clip (numpy/librosa/torchaudio; PANNs, PaSST and the synthetic
      classifier have only their torch front-end, on the device) and the network at batch 1 in
      float32;
  (b) tiva-bench, ``tiva_bench.extract.extract_audio`` as ``tiva-bench metrics`` runs it: files
      decoded and resampled in worker processes that read ahead while the device computes, batches
      of ``--batch``, the batched torch front-end on the device, the backbone's default precision
      on that device, outputs written to a fresh feature cache. Its rate is the steady one (after
      the first clip arrives); the worker pool's start-up is added once to its projection.

It prints clips/s for each, the ratio (b)/(a), the projected wall time for 30,892 10-s clips (the
VGGSound test set) and the largest per-clip relative deviation ``||e_b - e_a|| / ||e_a||`` of (b)'s
embeddings from (a)'s (the front-end, precision and device differences together); on CUDA also
each precision's deviation from float32 there (``--scan``), the device-side check of the defaults.
Networks have random weights (timing and numerics only: nothing printed is a metric value), the
same in (a) and (b).

    python benchmarks/bench_extractors.py --device cuda
    python benchmarks/bench_extractors.py --device cuda --precision tf32 --backbones passt,melception,imagebind
    python benchmarks/bench_extractors.py --device cpu --clips 8 --backbones synth_classifier,vggish
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiva_bench.config import ScoreConfig  # noqa: E402
from tiva_bench.core.audio import AudioClip  # noqa: E402
from tiva_bench.core.cache import FeatureCache  # noqa: E402
from tiva_bench.core.files import file_digest  # noqa: E402
from tiva_bench.core.pool import usable_cpus  # noqa: E402
from tiva_bench.extract import extract_audio, feature_cache  # noqa: E402
from tiva_bench.metrics.extractors import get_extractor  # noqa: E402
from tiva_bench.metrics.extractors.base import PRECISIONS, resolve_precision  # noqa: E402

BACKBONES = ("vggish", "melception", "passt", "panns", "imagebind", "synth_classifier")
VGGSOUND_TEST_CLIPS = 30_892
CLIP_S, FILE_SR = 10.0, 44100
TARGET_S = 300.0


def write_clips(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 10-s 44.1-kHz 16-bit WAV files: noise, a tone and clicks, seeded by index."""
    t = np.arange(int(CLIP_S * FILE_SR)) / FILE_SR
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        wav = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        wav[rng.integers(0, t.size, 8)] += 0.5
        paths.append(folder / f"clip{i:05d}.wav")
        sf.write(paths[-1], np.clip(wav, -1, 1).astype(np.float32), FILE_SR, subtype="PCM_16")
    return paths


def random_pair(name: str, device: str, batch: int, precision: str = "auto"):
    """(peer, batched): one set of random weights, built once; the peer runs the reference
    front-end at batch 1 in float32, the batched extractor the device front-end in ``precision``
    (``"auto"``: the backbone's default on that device)."""
    peer = get_extractor(name, device, batch_size=1, frontend="reference", precision="float32")
    batched = get_extractor(name, device, batch_size=batch, frontend="device", precision=precision)
    own = set(vars(batched))
    torch.manual_seed(0)
    peer.build()
    for key, value in vars(peer).items():  # the modules ``build`` made
        if key not in own:
            setattr(batched, key, value)
    peer._loaded = batched._loaded = True
    return peer, batched


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_peer(peer, paths: list[Path], device: str) -> tuple[float, list[np.ndarray], np.ndarray]:
    """Seconds for the clip-at-a-time loop over ``paths``, each clip's embedding, and the decoded
    waveforms ``(clips, n)``."""
    sr = peer.spec.sample_rate
    peer(AudioClip.load(paths[0], CLIP_S).at(sr)[None])  # warm-up (kernels, lazy imports)
    sync(device)
    t0 = time.perf_counter()
    wavs, embeddings = [], []
    for p in paths:
        wavs.append(AudioClip.load(p, CLIP_S).at(sr))
        embeddings.append(peer(wavs[-1][None])["embedding"][0])
    sync(device)
    return time.perf_counter() - t0, embeddings, np.stack(wavs)


def precision_scan(batched, wavs: np.ndarray, device: str) -> dict[str, float]:
    """Worst per-clip ``||e_p - e_32|| / ||e_32||`` of each lower precision ``p`` on this device
    (the batched extractor, its front-end, the peer's clips)."""
    saved, out = batched.dtype, {}
    for precision in ("float32", "tf32", "float16", "bfloat16"):
        batched.dtype = resolve_precision(precision, device, "float32")
        if precision == "float32" or batched.dtype != "float32":
            out[precision] = batched(wavs)["embedding"].reshape(len(wavs), -1).astype(np.float64)
    batched.dtype = saved
    ref = out.pop("float32")
    return {p: float(np.max(np.linalg.norm(e - ref, axis=1) / np.linalg.norm(ref, axis=1))) for p, e in out.items()}


class FirstItemClock:
    """A ``progress`` hook for ``extract_audio``: notes when the first decoded clip arrives, so the
    worker pool's start-up (paid once per backbone) is told apart from the steady rate."""

    def __init__(self):
        self.first = None

    def __call__(self, outcomes, total, desc):
        for item in outcomes:
            if self.first is None:
                self.first = time.perf_counter()
            yield item


def time_batched(batched, paths: list[Path], warmup: list[Path], cfg: ScoreConfig, device: str) -> tuple[float, float, FeatureCache, dict]:
    """``extract_audio`` over ``paths`` into a fresh cache: (seconds until the first clip was
    decoded, seconds from then to the end, the cache, digest -> path)."""
    cache = feature_cache(batched, cfg)
    extract_audio(batched, cache, {file_digest(p): p for p in warmup}, cfg)  # warm-up (kernels, autotuning)
    files = {file_digest(p): p for p in paths}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    clock = FirstItemClock()
    sync(device)
    t0 = time.perf_counter()
    report = extract_audio(batched, cache, files, cfg, progress=clock)
    sync(device)
    end = time.perf_counter()
    if report.failed or report.computed != len(files):
        raise RuntimeError(f"{batched.spec.name}: {report.computed} of {len(files)} computed, failed: {report.failed}")
    return clock.first - t0, end - clock.first, cache, files


def worst_deviation(peer_embeddings: list[np.ndarray], cache: FeatureCache, digests: list[str]) -> float:
    worst = 0.0
    for ref, digest in zip(peer_embeddings, digests):
        got = cache.get(digest)["embedding"]
        worst = max(worst, float(np.linalg.norm(got - ref) / np.linalg.norm(ref)))
    return worst


def bench_backbone(name: str, paths: list[Path], warmup: list[Path], args, cache_dir: Path) -> dict:
    """Time (a) and (b) for one backbone. The batched rate counts clips after the first one over
    the time after it arrived; its projection adds the start-up once."""
    peer, batched = random_pair(name, args.device, args.batch, args.precision)
    n_peer = min(args.peer_clips, len(paths))
    peer_s, peer_embeddings, peer_wavs = time_peer(peer, paths[:n_peer], args.device)
    cfg = ScoreConfig(workers=args.workers, device=args.device, batch_size=args.batch, cache_dir=str(cache_dir / name))
    cfg.audio.window_s = CLIP_S
    startup_s, steady_s, cache, files = time_batched(batched, paths, warmup, cfg, args.device)
    by_path = {p: d for d, p in files.items()}
    peer_rate = n_peer / peer_s
    batched_rate = (len(paths) - 1) / steady_s if len(paths) > 1 else len(paths) / (startup_s + steady_s)
    batched_projected = startup_s + VGGSOUND_TEST_CLIPS / batched_rate
    row = {
        "peer_clips": n_peer, "batched_clips": len(paths),
        "peer_clips_per_s": round(peer_rate, 2), "batched_clips_per_s": round(batched_rate, 2), "batched_startup_s": round(startup_s, 2),
        "ratio": round(batched_rate / peer_rate, 2),
        "peer_projected_s": round(VGGSOUND_TEST_CLIPS / peer_rate, 1), "batched_projected_s": round(batched_projected, 1),
        "frontend": batched.frontend, "dtype": batched.dtype, "fallbacks": batched.fallbacks,
        "max_rel_deviation": worst_deviation(peer_embeddings, cache, [by_path[p] for p in paths[:n_peer]]),
    }
    if args.device.startswith("cuda"):
        row["batched_peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if args.scan:
        row["precision_deviation"] = precision_scan(batched, peer_wavs, args.device)
    del peer, batched
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated, from: " + ", ".join(BACKBONES))
    ap.add_argument("--clips", type=int, default=512, help="10-s files timed through the batched path (a quarter more, at most one batch, warm it up first)")
    ap.add_argument("--peer-clips", type=int, default=64, help="files timed through the clip-at-a-time peer (at most --clips)")
    ap.add_argument("--batch", type=int, default=32, help="clips per batch in the batched path")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="the batched path's precision (auto: each backbone's default on the device); the printed deviation tests it")
    ap.add_argument("--scan", action=argparse.BooleanOptionalAction, default=None,
                    help="also measure every precision's deviation from float32 on the peer's clips (default: on CUDA only)")
    ap.add_argument("--workers", type=int, default=0, help="decoding processes (0: one per usable core)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.scan is None:
        args.scan = args.device.startswith("cuda")
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BACKBONES))
    if unknown:
        ap.error(f"unknown backbones {unknown}: choose from {', '.join(BACKBONES)}")
    gpu = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else platform.processor() or "cpu"
    n_warm = min(args.batch, args.clips // 4 or 1)
    print(f"device {args.device} ({gpu}), torch {torch.__version__}, {usable_cpus()} usable cores, workers {args.workers or 'all'}, "
          f"batch {args.batch}, {args.clips} timed clips (+{n_warm} warm-up), peer {min(args.peer_clips, args.clips)} clips; "
          f"10-s {FILE_SR}-Hz WAV; random weights", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tiva_bench_extractors_") as tmp:
        paths = write_clips(Path(tmp), args.clips + n_warm)
        for name in names:
            row = bench_backbone(name, paths[:args.clips], paths[args.clips:], args, Path(tmp) / "cache")
            results[name] = row
            print(f"{name:17s} peer {row['peer_clips_per_s']:8.1f} clips/s  batched {row['batched_clips_per_s']:8.1f} clips/s  "
                  f"x{row['ratio']:<6} (start-up {row['batched_startup_s']:.1f} s)  30,892 clips: peer {minutes(row['peer_projected_s']):>9s}, batched {minutes(row['batched_projected_s']):>9s}  "
                  f"[{row['frontend']} front-end, {row['dtype']}, max rel dev {row['max_rel_deviation']:.1e}"
                  + (f", {row['fallbacks']} float32 re-runs" if row["fallbacks"] else "") + "]", flush=True)
            if "precision_deviation" in row:
                print(f"{'':17s} deviation from float32 on this device: "
                      + ", ".join(f"{p} {d:.1e}" for p, d in row["precision_deviation"].items()), flush=True)
    total_peer = sum(r["peer_projected_s"] for r in results.values())
    total_batched = sum(r["batched_projected_s"] for r in results.values())
    print(f"{'all of the above':17s} 30,892 clips: peer {minutes(total_peer)}, batched {minutes(total_batched)} "
          f"(x{total_peer / total_batched:.2f}; target under {minutes(TARGET_S)} on one H100/H200: {'met' if total_batched < TARGET_S else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "device_name": gpu, "batch": args.batch, "clips": args.clips,
                                               "results": results, "total_projected_s": {"peer": total_peer, "batched": total_batched}}, indent=2))


if __name__ == "__main__":
    main()
