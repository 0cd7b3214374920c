"""Extraction throughput per backbone: 8-s clips per second at batch sizes 1-32, and peak memory.

Throughput depends only on the architecture, so the backbones are built with random weights here
(nothing this script prints is a metric value). The peer in the same run is the backbone's batch
size 1, which is how clip-at-a-time evaluation scripts call it.

    python benchmarks/bench_extractors.py                     # CPU, all backbones
    python benchmarks/bench_extractors.py --device cuda --backbones panns,passt --batches 1,8,32
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_instance(name: str, device: str):
    """An extractor with random weights (timing only)."""
    from tiva_bench.metrics.extractors import extractor_spec
    from tiva_bench.metrics.extractors.melception import build_melception
    from tiva_bench.metrics.extractors.panns import Cnn14
    from tiva_bench.metrics.extractors.passt import build_passt
    from tiva_bench.metrics.extractors.synth_classifier import SynthClassifier
    from tiva_bench.metrics.extractors.vggish import VGGishNet

    spec = extractor_spec(name)
    module, _, cls = spec.target.partition(":")
    import importlib

    ex = getattr(importlib.import_module(module), cls)(device=device)
    if name == "vggish":
        ex.model = VGGishNet().eval().to(device)
    elif name == "panns":
        ex.model = Cnn14().eval().to(device)
    elif name == "melception":
        ex.model = build_melception().eval().to(device)
        ex.mean, ex.std = np.zeros(80, np.float32), np.ones(80, np.float32)
    elif name == "passt":
        ex.mel, ex.net = build_passt()
        ex.mel.to(device)
        ex.net.to(device)
    elif name == "synth_classifier":
        ex = SynthClassifier(device=device)
        ex.load()
        return ex
    ex._loaded = True
    return ex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="synth_classifier,vggish,panns,melception,passt")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--clips", type=int, default=32, help="clips timed per batch size")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    for name in args.backbones.split(","):
        ex = random_instance(name, args.device)
        sr = ex.spec.sample_rate
        wavs = (np.random.default_rng(0).standard_normal((args.clips, 8 * sr)) * 0.1).astype(np.float32)
        row = {}
        for bs in (int(b) for b in args.batches.split(",")):
            ex.batch_size = bs
            ex(wavs[:bs])  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            ex(wavs)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            row[f"clips_per_s_batch{bs}"] = round(args.clips / (time.perf_counter() - t0), 2)
            if args.device.startswith("cuda"):
                row[f"peak_gpu_mb_batch{bs}"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        first = row[f"clips_per_s_batch{args.batches.split(',')[0]}"]
        row["best_vs_batch1"] = round(max(v for k, v in row.items() if k.startswith("clips")) / first, 2)
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results[name] = row
        print(name, json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "results": results}, indent=2))


if __name__ == "__main__":
    main()
