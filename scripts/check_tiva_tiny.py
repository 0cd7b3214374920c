"""Score the shipped tiva-tiny checkpoints on a fresh synthetic test split.

    python scripts/check_tiva_tiny.py [--work runs/tiva-tiny] [--n 48] [--seed 2024]

Generates the test split (a seed never used in training), audio from ``--preset tiva-tiny`` and
``--preset tiva-tiny-nolayout``, and mismatched references (each clip's reference audio swapped
with another clip's), scores all three against the references and prints the table (also in
WORK/check/tables/).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = "w_dis,dtw_dis,onset_acc,onset_ap,energy_l1,fad_synth,kl_synth,class_acc"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/tiva-tiny")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    work = Path(args.work) / "check"
    py = [sys.executable, "-m", "tiva_bench"]
    subprocess.run(py + ["data", "synth", "--split", f"test={args.n}", "--seed", str(args.seed), "--out", str(work / "data"), "-q"], check=True)
    ref = work / "data" / "test"
    for name in ("tiva-tiny", "tiva-tiny-nolayout"):
        subprocess.run(py + ["generate", "--preset", name, "--videos", str(ref), "--out", str(work / "gen" / name), "--seed", "0", "-q"], check=True)
    mismatched = work / "gen" / "mismatched-reference"
    mismatched.mkdir(parents=True, exist_ok=True)
    names = sorted(p.stem for p in ref.glob("*.wav"))
    for i, name in enumerate(names):
        shutil.copy(ref / f"{names[(i + 1) % len(names)]}.wav", mismatched / f"{name}.wav")
    results = []
    for system in ("tiva-tiny", "tiva-tiny-nolayout", "mismatched-reference"):
        out = work / "results" / system
        subprocess.run(py + ["metrics", str(work / "gen" / system), str(ref), "--metrics", METRICS, "--window", "10.24", "--label", system,
                             "--out", str(out), "--cache-dir", str(work / "cache"), "-q"], check=True)
        results.append(str(out))
    subprocess.run(py + ["report", *results, "--out", str(work / "tables"), "--decimals", "3"], check=True)


if __name__ == "__main__":
    main()
