"""Reproduce the shipped tiva-tiny checkpoints (models/tiva/assets/*.safetensors).

    python scripts/train_tiva_tiny.py [--work runs/tiva-tiny] [--parallel]

1. writes the synthetic train split: 1,000 clips, data seed 100 (never used for testing);
2. trains ``tiva-tiny`` (stages layout -> generator -> joint) and ``tiva-tiny-nolayout``
   (generator only, layout channel off), training seed 0, with the preset's step counts;
3. stores both as float16 safetensors in models/tiva/assets/ with their training record;
4. checks them on a fresh synthetic test split (seed 2024): W-dis / DTW-dis of each model's
   audio against the references, and of mismatched references, printed as a table.

With ``--parallel`` the two models train at the same time, one CPU thread each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ASSETS = ROOT / "models" / "tiva" / "assets"


def run(cmd: list[str], **kw) -> subprocess.Popen:
    print("$", " ".join(cmd), flush=True)
    return subprocess.Popen(cmd, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/tiva-tiny")
    ap.add_argument("--parallel", action="store_true")
    ap.add_argument("--n-train", type=int, default=1000)
    args = ap.parse_args()
    work = Path(args.work)
    py = sys.executable
    t0 = time.time()
    run([py, "-m", "tiva_bench", "data", "synth", "--split", f"train={args.n_train}", "--seed", "100", "--out", str(work / "data"), "-q"]).wait()
    print(f"data: {time.time() - t0:.0f} s", flush=True)
    jobs = {}
    for name in ("tiva-tiny", "tiva-tiny-nolayout"):
        cmd = [py, "-m", "tiva_bench", "train", "--preset", name, "--stage", "all", "--data", str(work / "data" / "train"),
               "--out", str(work / name), "--seed", "0", "--cache-dir", str(work / "cache"), "-q",
               "--joint-layout-loss-weight", "1.0", "--set", "patch_grid=1"]  # the settings the shipped checkpoints were trained with
        if args.parallel:
            cmd += ["--threads", "1"]
        log = open(work / f"{name}.log", "w")
        jobs[name] = (run(cmd, stdout=log, stderr=subprocess.STDOUT), time.time())
        if not args.parallel:
            jobs[name][0].wait()
            print(f"{name}: {time.time() - jobs[name][1]:.0f} s", flush=True)
    for name, (proc, started) in jobs.items():
        if proc.wait() != 0:
            raise SystemExit(f"training {name} failed; see {work / (name + '.log')}")
        print(f"{name}: done after {time.time() - started:.0f} s", flush=True)

    from tiva_bench.models.tiva.model import TiVAModel, checkpoint_extra

    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in jobs:
        src = work / name / "checkpoint.safetensors"
        record = checkpoint_extra(src)
        record.update({"data_seed": 100, "n_train": args.n_train, "reproduce": "python scripts/train_tiva_tiny.py"})
        TiVAModel.load(src).save(ASSETS / f"{name}.safetensors", extra=record, half=True)
        print(f"shipped {ASSETS / (name + '.safetensors')}")
    subprocess.run([py, str(ROOT / "scripts" / "check_tiva_tiny.py"), "--work", str(work)], check=True)


if __name__ == "__main__":
    main()
