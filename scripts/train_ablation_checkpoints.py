"""Train the per-row ablation checkpoints that ``tiva-bench ablate SUITE --pretrained`` loads.

    python scripts/train_ablation_checkpoints.py [--suite all] [--row SLUG] [--work runs/ablation-ckpt] [--device cpu]

For every row of the suite(s) that has no shipped checkpoint of its own (rows naming
``pretrained:`` reuse shipped files or join their parts; rows marked ``pretrained: train`` are
trained on first use and not shipped), this runs the row exactly as
``tiva-bench ablate SUITE`` does: the tiva-tiny preset, training seed 0, the synthetic train split
of data seed 100 (1,000 clips, the data the shipped tiva-tiny checkpoints were trained on), the
preset's step counts; then it stores the final checkpoint as float16 safetensors in
``models/tiva/assets/ablate-<suite>-<row>.safetensors`` with its training record (seed, data seed,
steps, command). Only the parts the row trained and uses are stored: T alone for layout and
resolution rows, S + G (and the lift) for generator-only rows sampled with ground-truth layouts,
the whole model otherwise. For Figure 5 rows the training curves are stored beside it
(``ablate-fig5-<row>.curves.json``). The scores the run also writes (``WORK/tables/``) are the
numbers to report in docs/ABLATIONS.md.

Rows sharing training with another row train once (TiVA and w/o Joint share two stages).
Expect about 15-20 minutes of two-core CPU time per generator row and a few minutes per
layout-only row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiva_bench import ablate  # noqa: E402
from tiva_bench.models.tiva.model import TiVAModel, checkpoint_extra  # noqa: E402

ASSETS = ROOT / "models" / "tiva" / "assets"


def shipped_parts(suite, row) -> tuple[str, ...] | None:
    """The model parts a row's shipped file needs (None: all of them)."""
    if suite.kind in ("layout", "resolution"):
        return ("layout",)
    if row.stages == ["generator"] and row.inference.get("layout") == "ground_truth":
        return ("semantic", "generator", "lift")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="all", help="a bundled suite name (default all)")
    ap.add_argument("--row", help="only this row (its slug, e.g. wo-joint), or several, comma-separated, run in that order")
    ap.add_argument("--work", default="runs/ablation-ckpt", help="working folder (the ablate OUT)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n", type=int, default=32, help="test clips scored along the way")
    ap.add_argument("--n-val", type=int, default=200, help="validation clips for L2(t_a, t_v)")
    args = ap.parse_args()

    opts = ablate.AblateOptions(out=Path(args.work), preset="tiva-tiny", n=args.n, n_val=args.n_val, n_train=args.n_train, seed=args.seed,
                                data_seed=ablate.DATA_SEED, device=args.device)
    ASSETS.mkdir(parents=True, exist_ok=True)
    suites = ablate.load_suite(args.suite, opts.preset)
    if args.row:
        unknown = set(args.row.split(",")) - {r.slug for suite in suites for r in suite.rows}
        if unknown:
            ap.error(f"unknown rows {', '.join(sorted(unknown))} (the rows: tiva-bench ablate --list)")
    for suite in suites:
        if args.row:  # these rows, in the order given
            by_slug = {r.slug: r for r in suite.rows}
            suite.rows = [by_slug[slug] for slug in args.row.split(",") if slug in by_slug]
            if not suite.rows:
                continue
        suite.rows = [r for r in suite.rows if not r.pretrained]
        if not suite.rows:
            continue
        t0 = time.time()
        ablate.run_suite(suite, opts, log=lambda m: print(m, flush=True))
        for row in suite.rows:
            record_path = opts.out / "rows" / row.slug / "row.json"
            src = Path(json.loads(record_path.read_text())["checkpoint"])
            record = checkpoint_extra(src)
            record.update({"suite": suite.name, "row": row.slug, "label": row.label, "seed": args.seed, "data_seed": ablate.DATA_SEED,
                           "n_train": args.n_train, "reproduce": f"python scripts/train_ablation_checkpoints.py --suite {suite.name} --row {row.slug}"})
            target = ASSETS / f"ablate-{suite.name}-{row.slug}.safetensors"
            parts = shipped_parts(suite, row)
            record["parts"] = list(parts) if parts else "all"
            TiVAModel.load(src).save(target, extra=record, half=True, parts=parts)
            curves = opts.out / "rows" / row.slug / "curves.json"
            if curves.exists():
                shutil.copyfile(curves, target.with_suffix(".curves.json"))
            print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB)", flush=True)
        print(f"{suite.name}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
