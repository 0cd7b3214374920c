"""TiVA inference speed, the paper's protocol: mean per-sample sampling time over ``--batches``
batches of ``--batch-size`` samples after one warm-up batch, vocoder excluded, device synchronised.

    python benchmarks/bench_tiva.py --preset tiva-tiny                       # CPU, shipped checkpoint
    python benchmarks/bench_tiva.py --preset tiva-paper --device cuda --dtype bf16 --compile

``tiva-paper`` uses random weights unless ``--checkpoint`` is given: timing needs only the shapes.
The peer, measured in the same run, is the same pipeline in float32 without compilation; the
script prints the ratio, the FLOPs per sample (counted with torch's FlopCounterMode), the
achieved FLOP/s, and on a GPU its share of the device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


def build(args):
    from tiva_bench.models.tiva.codec import build_codec
    from tiva_bench.models.tiva.model import TiVAModel
    from tiva_bench.models.tiva.pipeline import SHIPPED, TiVAPipeline

    from tiva_bench.models.tiva.config import preset

    if args.checkpoint or args.preset in SHIPPED:
        model = TiVAModel.load(args.checkpoint or SHIPPED[args.preset])
    else:
        model = TiVAModel(preset(args.preset))
    return TiVAPipeline(model, build_codec(model.cfg, random_init=True), None, args.device)


def time_pipeline(pipe, cfg, batches, batch_size, steps, guidance, dtype, device):
    n_layers = len(cfg.cls_layers)
    cls = torch.randn(batch_size, cfg.n_frames, n_layers, cfg.feature_dim)
    patch = torch.randn(batch_size, cfg.n_frames, n_layers, cfg.patch_grid ** 2, cfg.feature_dim)
    ctx = torch.autocast(device_type=torch.device(device).type, dtype=dtype) if dtype != torch.float32 else torch.autocast("cpu", enabled=False)

    def once(seed):
        with ctx:
            pipe(cls, patch, seed=seed, steps=steps, guidance=guidance, decode=False, batch_size=batch_size)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    once(0)  # warm-up (and compilation)
    t0 = time.perf_counter()
    for b in range(batches):
        once(b + 1)
    return (time.perf_counter() - t0) / (batches * batch_size)


def flops_per_sample(pipe, cfg, steps, guidance):
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, cfg.latent_channels, cfg.latent_time, cfg.latent_freq, device=pipe.device)
    s = torch.zeros(1, cfg.n_frames, cfg.semantic_dim, device=pipe.device)
    lm = torch.zeros(1, 1, cfg.latent_time, cfg.latent_freq, device=pipe.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        pipe.model.generator(x, torch.tensor([500], device=pipe.device), s, lm)
    branches = 2 if guidance != 1.0 else 1
    return counter.get_total_flops() * steps * branches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiva-tiny")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    ap.add_argument("--json")
    args = ap.parse_args()
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    pipe = build(args)
    cfg = pipe.cfg
    base = time_pipeline(pipe, cfg, args.batches, args.batch_size, args.steps, args.guidance, torch.float32, args.device)
    tuned = base
    if args.compile or dtype != torch.float32:
        if args.compile:
            pipe.model.generator.unet = torch.compile(pipe.model.generator.unet)
        tuned = time_pipeline(pipe, cfg, args.batches, args.batch_size, args.steps, args.guidance, dtype, args.device)
    flops = flops_per_sample(pipe, cfg, args.steps, args.guidance)
    device_name = torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else "cpu"
    numbers = {
        "preset": args.preset, "device": device_name, "batches": args.batches, "batch_size": args.batch_size, "steps": args.steps,
        "guidance": args.guidance, "fp32_eager_s_per_sample": round(base, 5),
        f"{args.dtype}{'_compiled' if args.compile else ''}_s_per_sample": round(tuned, 5),
        "speedup_vs_fp32_eager": round(base / tuned, 2), "gflops_per_sample": round(flops / 1e9, 2),
        "achieved_tflops": round(flops / tuned / 1e12, 3),
    }
    peak = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    if peak:
        numbers["share_of_dense_bf16_peak"] = round(flops / tuned / peak, 4)
    print(json.dumps(numbers, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
