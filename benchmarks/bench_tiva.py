"""TiVA sampling speed, the paper's protocol: mean per-sample sampling time over ``--batches``
batches of ``--batch-size`` samples after one untimed warm-up batch (which also compiles), 25
DPM-Solver steps with guidance 5 (both branches in one UNet call), vocoder excluded, device
synchronised after every batch.

    python benchmarks/bench_tiva.py --preset tiva-paper --peer-batches 2      # a GPU: one command
    python benchmarks/bench_tiva.py --preset tiva-tiny --device cpu --compile off --batches 1 --batch-size 2 --steps 3

Two paths are timed in the same run on the same weights: the peer, float32 eager (the exact
settings), on ``--peer-batches`` batches (default: ``--batches``), and the fast path, by default
the settings ``tiva-bench generate`` uses for the paper-sized model on a GPU (bf16 autocast,
``torch.compile(mode="reduce-overhead")``; ``--precision``, ``--compile``, ``--channels-last``
and ``--attention`` change it). ``tiva-paper`` uses random weights unless ``--checkpoint`` is
given: timing needs only the shapes.

Printed for each path: seconds per sample, the achieved FLOP/s and its share of the device's
dense bf16 peak (a table of known peaks below; ``--peak-tflops`` overrides); then the speed-up
and the FLOPs per sample, counted with torch's ``FlopCounterMode`` on the peer (matrix products,
convolutions and attention of the layout predictor, the semantic encoder and every UNet call of
both guidance branches) from one- and two-step runs: ``F(1) + (steps - 1) (F(2) - F(1))``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# dense bf16 tensor-core peaks (FLOP/s, no sparsity) by a substring of the device name; first match wins
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12),
             ("L40S", 362e12), ("4090", 165e12)]


def build_model(args):
    from tiva_bench.models.tiva.config import preset
    from tiva_bench.models.tiva.model import TiVAModel
    from tiva_bench.models.tiva.pipeline import SHIPPED

    if args.checkpoint or args.preset in SHIPPED:
        return TiVAModel.load(args.checkpoint or SHIPPED[args.preset])
    torch.manual_seed(0)
    return TiVAModel(preset(args.preset))


def make_pipeline(model, settings, device):
    from tiva_bench.models.tiva.codec import build_codec
    from tiva_bench.models.tiva.pipeline import TiVAPipeline

    return TiVAPipeline(model, build_codec(model.cfg, random_init=True), None, device, settings)


def features(cfg, batch_size, device):
    """Random frame-encoder features ``cls (B,T,L,D)``, ``patch (B,T,L,G,D)`` already on the device
    (as the frame encoder leaves them)."""
    g = torch.Generator().manual_seed(0)
    n_layers = len(cfg.cls_layers)
    cls = torch.randn(batch_size, cfg.n_frames, n_layers, cfg.feature_dim, generator=g)
    patch = torch.randn(batch_size, cfg.n_frames, n_layers, cfg.patch_grid ** 2, cfg.feature_dim, generator=g)
    return cls.to(device), patch.to(device)


def seconds_per_sample(pipe, inputs, batches: int, steps: int, guidance: float) -> float:
    """One untimed warm-up batch, then ``batches`` timed ones; seconds per sample."""
    cls, patch = inputs

    def once(seed):
        pipe(cls, patch, seed=seed, steps=steps, guidance=guidance, decode=False, batch_size=cls.shape[0])
        if pipe.device.type == "cuda":
            torch.cuda.synchronize(pipe.device)

    once(0)
    t0 = time.perf_counter()
    for b in range(batches):
        once(b + 1)
    return (time.perf_counter() - t0) / (batches * cls.shape[0])


def flops_per_sample(pipe, steps: int, guidance: float) -> float:
    """FLOPs of one sample's sampling (see the module docstring); attention on the CPU is counted
    with torch's SDPA formula, which FlopCounterMode lacks for the CPU kernel."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    cpu_sdpa = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v)}
    cls, patch = features(pipe.cfg, 1, pipe.device)

    def count(n_steps):
        with FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as counter:
            pipe(cls, patch, seed=0, steps=n_steps, guidance=guidance, decode=False, batch_size=1)
        return counter.get_total_flops()

    one, two = count(1), count(2)
    return one + (steps - 1) * (two - one)


def bf16_peak(device_name: str, override_tflops: float | None) -> tuple[float, str]:
    """``(FLOP/s, where it comes from)``; NaN with the reason when unknown."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    for key, peak in PEAK_BF16:
        if key in device_name:
            return peak, f"table entry {key!r}"
    return math.nan, f"no bf16 peak known for {device_name!r}: pass --peak-tflops"


def main() -> None:
    from tiva_bench.models.tiva.inference import ATTENTION_KERNELS, COMPILE_MODES, EXACT, FAST, PRECISIONS, InferenceSettings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiva-paper")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, default=10, help="timed batches of the fast path")
    ap.add_argument("--peer-batches", type=int, help="timed batches of the fp32-eager peer (default: --batches)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--precision", choices=list(PRECISIONS), default=FAST.precision)
    ap.add_argument("--compile", choices=list(COMPILE_MODES), default=FAST.compile)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--attention", choices=list(ATTENTION_KERNELS), default=FAST.attention)
    ap.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the device in TFLOP/s (default: the table)")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    peer_batches = args.batches if args.peer_batches is None else args.peer_batches
    if min(args.batches, peer_batches, args.batch_size, args.steps) < 1:
        ap.error("--batches, --peer-batches, --batch-size and --steps must be >= 1")
    fast = InferenceSettings(precision=args.precision, compile=args.compile, channels_last=args.channels_last, attention=args.attention)

    model = build_model(args)
    peer = make_pipeline(model, EXACT, args.device)
    tuned = make_pipeline(copy.deepcopy(model), fast, args.device)
    cfg = peer.cfg
    inputs = features(cfg, args.batch_size, peer.device)
    device_name = torch.cuda.get_device_name(peer.device) if peer.device.type == "cuda" else "cpu"
    peak, peak_source = bf16_peak(device_name, args.peak_tflops)

    flops = flops_per_sample(peer, args.steps, args.guidance)
    rows = []
    for name, pipe, batches in ((f"{EXACT.name} (peer)", peer, peer_batches), (fast.name, tuned, args.batches)):
        sps = seconds_per_sample(pipe, inputs, batches, args.steps, args.guidance)
        rows.append({"path": name, "batches": batches, "s_per_sample": sps, "tflops": flops / sps / 1e12, "share_of_bf16_peak": flops / sps / peak,
                     "settings": pipe.inference_record()})

    print(f"TiVA sampling: {args.preset}, {device_name}, {args.steps} steps, guidance {args.guidance}, batches of {args.batch_size} "
          f"after one warm-up batch, vocoder excluded")
    print(f"{'path':<34} {'batches':>7} {'s/sample':>9} {'TFLOP/s':>8} {'share of bf16 peak':>18}")
    for r in rows:
        share = "n/a" if math.isnan(r["share_of_bf16_peak"]) else f"{100 * r['share_of_bf16_peak']:.1f}%"
        print(f"{r['path']:<34} {r['batches']:>7} {r['s_per_sample']:>9.4f} {r['tflops']:>8.3g} {share:>18}")
    speedup = rows[0]["s_per_sample"] / rows[1]["s_per_sample"]
    print(f"speed-up over the peer: {speedup:.2f}x; {flops / 1e12:.4g} TFLOP per sample; bf16 dense peak: "
          + (f"{peak / 1e12:.0f} TFLOP/s ({peak_source})" if not math.isnan(peak) else peak_source))
    fallback = rows[1]["settings"].get("compile_fallback")
    if fallback:
        print(f"the fast path ran without compilation: {fallback}")
    if args.json:
        record = {"preset": args.preset, "checkpoint": args.checkpoint, "device": device_name, "steps": args.steps, "guidance": args.guidance,
                  "batch_size": args.batch_size, "flops_per_sample": flops, "bf16_peak_flops": None if math.isnan(peak) else peak,
                  "bf16_peak_source": peak_source, "speedup": speedup, "torch": torch.__version__,
                  "date": time.strftime("%Y-%m-%d"), "paths": [{**r, "share_of_bf16_peak": None if math.isnan(r["share_of_bf16_peak"]) else r["share_of_bf16_peak"]} for r in rows]}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
