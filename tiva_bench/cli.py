"""The ``tiva-bench`` command line.

Exit codes: 0 success; 1 ``--strict`` and some clip was skipped; 2 bad usage or configuration;
3 nothing could be scored; 4 unexpected internal error (rerun with ``--debug`` for a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import textwrap
from pathlib import Path

from tiva_bench import __version__
from tiva_bench.core.errors import ConfigError, NothingToScoreError, TivaBenchError

EXIT_OK, EXIT_STRICT, EXIT_USAGE, EXIT_NOTHING, EXIT_INTERNAL = 0, 1, 2, 3, 4

METRICS_EXAMPLES = textwrap.dedent("""\
    examples:
      tiva-bench metrics gen/ ref/ --out results/mymodel
      tiva-bench metrics gen/ videos/ --metrics w_dis,dtw_dis      # references may be videos
      tiva-bench metrics gen/ ref/ --strip-suffix _gen              # clip1_gen.wav <-> clip1.mp4
      tiva-bench metrics gen/ ref/ --gen-pattern '(?P<key>[^_]+_\\d{6})'
      tiva-bench metrics gen/ ref/ --set sync.dtw=fastdtw --set audio.window_s=10
      tiva-bench metrics gen/ synth/test --metrics w_dis,fad_synth,kl_synth,is_synth,class_acc --window 10.24
      tiva-bench metrics --list
      torchrun --standalone --nproc_per_node 4 -m tiva_bench metrics gen/ ref/ --device cuda --out results/m   # one rank per GPU

    Files are paired by name (stem) anywhere below each folder; unmatched, duplicate, unreadable,
    empty or non-finite files are listed as skipped with a reason and the run goes on.
    exit codes: 0 ok, 1 --strict and something skipped, 2 usage/config error,
                3 nothing could be scored, 4 internal error
    """)


ABLATE_EXAMPLES = textwrap.dedent("""\
    examples:
      tiva-bench ablate --list
      tiva-bench ablate table5 --pretrained                  # shipped checkpoints, CPU, minutes
      tiva-bench ablate table4 --steps 200 --n-val 50        # retrain the predictor variants briefly
      tiva-bench ablate all --out runs/ablate                # retrain every row (hours on a CPU)
      tiva-bench ablate my_suite.yaml --steps 2 --n 2        # your own suite: check the plumbing
      tiva-bench ablate table5 --preset tiva-paper --data vggsound/ --device cuda

    A suite is YAML: rows with a label, TiVA config overrides, training stages and inference
    switches (see configs/suites/ and docs/ABLATIONS.md). Outputs: OUT/gen/<row>/ (audio),
    OUT/rows/<row>/ (results.json, layouts.npz), OUT/tables/<suite>.{csv,md,tex}, OUT/figures/.
    """)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiva-bench", description="Score and report video-to-audio generation the way the TiVA paper does.")
    parser.add_argument("--version", action="version", version=f"tiva-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    m = sub.add_parser("metrics", help="score generated audio against references", description="Score every generated file against the reference with the same name.", epilog=METRICS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("gen_dir", nargs="?", metavar="GEN_DIR", help="folder of generated audio (or videos)")
    m.add_argument("ref_dir", nargs="?", metavar="REF_DIR", help="folder of reference audio or videos")
    m.add_argument("--list", action="store_true", help="list the metrics (name, direction, what each needs) and exit")
    m.add_argument("--metrics", help="comma-separated metric names (default: all clip metrics)")
    m.add_argument("--out", metavar="DIR", help="write results.json and per_clip.csv here")
    m.add_argument("--label", help="name of this system in tables (default: GEN_DIR's name)")
    m.add_argument("--workers", type=int, help="processes (default: one per CPU core)")
    m.add_argument("--window", type=float, metavar="S", help="score the first S seconds (default 8.0; 0 = whole clips)")
    m.add_argument("--pair-by", choices=["stem", "relpath"], help="match by file stem (default) or relative path")
    m.add_argument("--strip-suffix", metavar="S", help="remove S from the end of generated names before matching")
    m.add_argument("--strip-prefix", metavar="S", help="remove S from the start of generated names before matching")
    m.add_argument("--gen-pattern", metavar="REGEX", help="key = group 'key' (or group 1) of REGEX in generated names")
    m.add_argument("--ref-pattern", metavar="REGEX", help="key = group 'key' (or group 1) of REGEX in reference names")
    m.add_argument("--device", help="where backbones run: cpu (default), cuda, cuda:1")
    m.add_argument("--batch-size", type=int, help="clips per backbone batch (default 16)")
    m.add_argument("--cache-dir", metavar="DIR", help="feature cache (default $TIVA_BENCH_CACHE or ~/.cache/tiva_bench)")
    m.add_argument("--recompute", action="store_true", help="ignore cached backbone features and rewrite them")
    m.add_argument("--videos", metavar="DIR", help="the videos, for imagebind_score (default: the references if they are videos, or a video beside each)")
    m.add_argument("--config", metavar="YAML", help="config file (see configs/default.yaml)")
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. sync.hop_length=512 (repeatable)")
    m.add_argument("--strict", action="store_true", help="exit 1 if any clip was skipped")
    m.add_argument("--weights-dir", action="append", default=[], metavar="DIR", help="folder holding checkpoints fetched elsewhere, searched first (repeatable)")
    m.add_argument("--allow-unverified", action="store_true", help="use checkpoints that fail their published hash (results record it); for people who know why")
    _add_common(m)

    r = sub.add_parser("report", help="tables (CSV, Markdown, LaTeX) from results files", description="Summarise results.json files (one row each) as paper-style tables: a flat summary and the TiVA paper's Table 1 layout (table1.*).", epilog="examples:\n  tiva-bench report runs/run/results/* --out tables/\n  tiva-bench report runs/run/results/* --reported tiva2024     # with the paper's published rows\n  tiva-bench report --reported tiva2024                        # the paper's Table 1 alone", formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("results", nargs="*", metavar="RESULTS", help="results.json files or folders holding one")
    r.add_argument("--reported", metavar="NAME", help="add a paper's published rows, marked as reported (tiva2024: TiVA, ACM MM 2024, Table 1)")
    r.add_argument("--allow-mixed", action="store_true", help="show results scored under different settings together (footnoted, not ranked)")
    r.add_argument("--rank-reported", action="store_true", help="rank reported rows together with measured ones")
    r.add_argument("--omit-empty", action="store_true", help="leave out Table 1 columns that no row has")
    r.add_argument("--out", metavar="DIR", default=".", help="where to write summary.csv/.md/.tex (default: here)")
    r.add_argument("--metrics", help="comma-separated metric columns, in order")
    r.add_argument("--decimals", type=int, default=2)
    r.add_argument("--name", default="summary", help="file name stem of the tables")
    r.add_argument("--caption", help="LaTeX caption")
    r.add_argument("--html", action="store_true", help="also write the browsable report OUT/report/index.html (players, spectrograms, onset curves)")
    r.add_argument("--title", default="tiva-bench report", help="title of the HTML report")
    r.add_argument("--resamples", type=int, default=10000, metavar="N", help="bootstrap resamples for the 95%% intervals (default 10000)")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    r.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired tests against the best system (default 0.05)")
    r.add_argument("--latex-intervals", action="store_true", help="also write NAME_ci.tex: values with ± half-interval and the not-different-from-best mark")
    r.add_argument("--copy-media", action="store_true", help="copy the audio into the report folder (default: link to it by relative path)")
    r.add_argument("--no-media", action="store_true", help="HTML tables only: no spectrograms, curves or players")
    r.add_argument("--page-size", type=int, default=10, metavar="K", help="clips per page of the HTML report (default 10)")
    _add_common(r)

    fg = sub.add_parser("figure", help="publication figures (PNG and PDF) under OUT/figures/", description="Figures in the paper's style, written as PNG (300 dpi) and PDF.",
                        epilog="examples:\n  tiva-bench figure mels runs/run/results/* --clips test_00003,test_00007 --out runs/run\n  tiva-bench figure dist runs/run/results/* --metrics w_dis,dtw_dis --out runs/run\n  tiva-bench figure layout-resolution runs/ablate/layout_curves.json --out runs/ablate", formatter_class=argparse.RawDescriptionHelpFormatter)
    fg_sub = fg.add_subparsers(dest="figure_command", metavar="FIGURE")
    fm = fg_sub.add_parser("mels", help="Figure 4: stacked mel spectrograms (reference, systems, predicted layout) for chosen clips")
    fm.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders, one per system (rows in this order)")
    fm.add_argument("--clips", required=True, help="comma-separated clip names (columns), as in per_clip.csv")
    fm.add_argument("--window", type=float, metavar="S", help="seconds shown (default: the scored window)")
    fm.add_argument("--no-frames", action="store_true", help="leave out the video frames row")
    fd = fg_sub.add_parser("dist", help="per-clip metric distributions per system, with means and intervals")
    fd.add_argument("results", nargs="+", metavar="RESULTS")
    fd.add_argument("--metrics", help="comma-separated per-clip metrics (default: all)")
    fd.add_argument("--resamples", type=int, default=10000, metavar="N", help="bootstrap resamples for the intervals")
    fl = fg_sub.add_parser("layout-resolution", help="Figure 5: training loss and validation L2 per layout resolution")
    fl.add_argument("curves", metavar="CURVES_JSON", help='JSON: {"[102,5]": {"train_loss": [...], "val_l2": [...], "step": [...]}, ...}')
    for f in (fm, fd, fl):
        f.add_argument("--out", default=".", metavar="DIR", help="figures go to DIR/figures/ (default: here)")
        f.add_argument("--name", help="file name stem (default: the figure kind)")
        _add_common(f)

    data = sub.add_parser("data", help="datasets: the synthetic benchmark, real-data feature extraction")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    syn = data_sub.add_parser("synth", help="write the procedural audio-visual benchmark", description="Write procedural clips (mp4 with AAC audio, wav, json metadata) where what is seen decides what is heard and when. Deterministic for a seed.", epilog="examples:\n  tiva-bench data synth --n 100 --out data/synth --seed 0\n  tiva-bench data synth --split train=800,val=100,test=100 --out data/synth\n  tiva-bench data synth --n 50 --split test --seed 7 --out data/synth-heldout", formatter_class=argparse.RawDescriptionHelpFormatter)
    syn.add_argument("--out", required=True, metavar="DIR")
    syn.add_argument("--n", type=int, default=100, help="clips per split (default 100)")
    syn.add_argument("--synthetic-version", type=int, default=1, choices=[1, 2], help="benchmark version: 1 (default) or 2 (adds twin classes that only the video tells apart)")
    syn.add_argument("--split", default="train,val,test", help="splits to write, optionally with counts: train=800,val=100,test=100")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--duration", type=float, default=10.24, help="seconds per clip (default 10.24, the TiVA window)")
    syn.add_argument("--workers", type=int, default=0)
    _add_common(syn)

    w = sub.add_parser("weights", help="list, download, verify or locate pretrained checkpoints", description="Every pretrained checkpoint tiva-bench uses, with its source, hash and licence. Files are searched in --weights-dir / $TIVA_BENCH_WEIGHTS, then in the cache ($TIVA_BENCH_CACHE/weights).")
    w.add_argument("action", choices=["list", "download", "verify", "path"])
    w.add_argument("names", nargs="*", metavar="NAME", help="checkpoint names (default: all, for list/verify)")
    w.add_argument("--weights-dir", action="append", default=[], metavar="DIR", help="folder holding checkpoints fetched elsewhere (repeatable)")
    _add_common(w)

    cf = data_sub.add_parser("clip-features", help="cache per-video CLIP features (layers 4/8/11) for the TiVA model", description="Decode one 10.24-s window per video at 10 fps, run the frozen CLIP ViT-B/16 and cache CLS and pooled patch tokens of layers 4, 8, 11 per frame. Resumable; --shard i/N splits the work across processes or GPUs.", epilog="examples:\n  tiva-bench data clip-features --videos data/synth/test\n  tiva-bench data clip-features --vggsound vggsound.csv --root /data/vggsound --split test --shard 0/4 --device cuda:0", formatter_class=argparse.RawDescriptionHelpFormatter)
    src = cf.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", metavar="DIR", help="a folder of videos (recursive)")
    src.add_argument("--vggsound", metavar="CSV", help="VGGSound's vggsound.csv (use with --root)")
    cf.add_argument("--root", metavar="DIR", help="folder holding the VGGSound clips ({ytid}_{start:06d}.mp4)")
    cf.add_argument("--split", choices=["train", "test"], help="VGGSound split")
    cf.add_argument("--shard", default="0/1", metavar="I/N", help="process the I-th of N parts (default 0/1)")
    cf.add_argument("--window-policy", choices=["pad", "loop", "skip"], default="pad", help="clips shorter than 10.24 s (default pad)")
    cf.add_argument("--preset", default="tiva-paper", help="model preset whose CLIP layers, layer numbering and patch grid the features follow (default tiva-paper)")
    cf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model setting, e.g. patch_grid=1 or clip_layer_numbering=1-based")
    cf.add_argument("--device", default="cpu")
    cf.add_argument("--batch-frames", type=int, default=128)
    cf.add_argument("--cache-dir", metavar="DIR", help="feature cache (default $TIVA_BENCH_CACHE or ~/.cache/tiva_bench)")
    cf.add_argument("--weights-dir", action="append", default=[], metavar="DIR")
    cf.add_argument("--recompute", action="store_true")
    _add_common(cf)

    tr = sub.add_parser("train", help="train the TiVA model (stages layout, generator, joint)", description="Train TiVA on a folder of videos with their audio (e.g. the synthetic train split). Resumes from OUT if interrupted. Multi-GPU/multi-node: start with torchrun.", epilog="examples:\n  tiva-bench data synth --split train=1000 --out data/synth --seed 100\n  tiva-bench train --preset tiva-tiny --stage all --data data/synth/train --out runs/tiny\n  torchrun --nproc_per_node 4 -m tiva_bench train --preset tiva-paper --data /data/vggsound --out runs/paper --device cuda", formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--preset", default="tiva-tiny", help="tiva-tiny, tiva-tiny-nolayout or tiva-paper")
    tr.add_argument("--stage", default="all", choices=["layout", "generator", "joint", "all"])
    tr.add_argument("--data", required=True, metavar="DIR", help="videos with audio (recursive)")
    tr.add_argument("--out", required=True, metavar="DIR")
    tr.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint (e.g. after the layout stage)")
    tr.add_argument("--steps", type=int, help="steps for every stage run (default: the preset's)")
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-every", type=int, default=250)
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    tr.add_argument("--cache-dir", metavar="DIR")
    tr.add_argument("--joint-layout-loss-weight", type=float, default=None, metavar="W",
                    help="joint stage: add W x L2(T(v), t_a) to the epsilon loss (default 0: the paper's Eq. 10)")
    tr.add_argument("--init-unet", metavar="SAFETENSORS", help="start a new model's G from this pretrained UNet (e.g. AudioLDM2's; extra layout channel zero-initialised)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="model_set",
                    help="override a model config field of the preset, e.g. --set layout_head=per-step --set patch_grid=1 (see docs/MODEL.md)")
    _add_common(tr)

    ge = sub.add_parser("generate", help="generate audio for videos with a TiVA checkpoint", description="Write one 16-kHz wav per video (same stem) and timing.json.", epilog="examples:\n  tiva-bench generate --preset tiva-tiny --videos data/synth/test --out gen/tiny\n  tiva-bench generate --checkpoint runs/tiny/checkpoint.safetensors --videos clips/ --out gen/ --seed 1 --steps 25 --guidance 5", formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ge.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH")
    src.add_argument("--preset", help="tiva-tiny or tiva-tiny-nolayout (shipped checkpoints)")
    ge.add_argument("--videos", required=True, metavar="DIR")
    ge.add_argument("--out", required=True, metavar="DIR")
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--steps", type=int, default=25)
    ge.add_argument("--guidance", type=float, default=5.0)
    ge.add_argument("--no-layout", action="store_true", help="sample without the layout (ablation)")
    ge.add_argument("--no-semantics", action="store_true", help="sample without the semantic tokens (ablation)")
    ge.add_argument("--batch-size", type=int, default=16)
    ge.add_argument("--device", default="cpu")
    ge.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                    help="the UNet's precision (auto: bf16 for the paper-sized model on a GPU, fp32 otherwise)")
    ge.add_argument("--compile", choices=["auto", "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"], default="auto",
                    help="torch.compile the UNet in this mode (auto: reduce-overhead, with CUDA graphs, for the paper-sized model on a GPU, off otherwise)")
    _add_common(ge)

    rn = sub.add_parser("run", help="generate with several systems, score them, write tables", description="Generate audio for a test set with each system, score every system against the references and write paper-style tables. Without --data, a fresh synthetic test split is used.", epilog="examples:\n  tiva-bench run --models tiva-tiny,tiva-tiny-nolayout,ground-truth,shuffled\n  tiva-bench run --models tiva=runs/paper/checkpoint.safetensors,difffoley=outputs/difffoley --data vggsound_test/ --metrics w_dis,dtw_dis\n  tiva-bench run --models specvqgan=out/svg,im2wav=out/im2wav,difffoley-cfg=out/df_cfg --data refs/ --strip-suffix _gen\n\nsystems: tiva[=CHECKPOINT], tiva-tiny, tiva-tiny-nolayout, folder=DIR, specvqgan[=DIR], diffsound[=DIR], difffoley[=DIR] (CFG+CG),\n         difffoley-cfg[=DIR], im2wav[=DIR] (halves NAME_0_4000 + NAME_4000_8000 joined), ground-truth, shuffled, shifted[=S], noise, silence\n         (a baseline without =DIR runs its own code: set TIVA_BENCH_<NAME>_CHECKOUT or --systems YAML)\nwrites OUT/tables/table1.{csv,md,tex} (the paper's Table 1 layout) and summary.{csv,md,tex}", formatter_class=argparse.RawDescriptionHelpFormatter)
    rn.add_argument("--models", help="comma-separated systems (name or name=ARG); default on the synthetic benchmark: tiva-tiny,tiva-tiny-nolayout,ground-truth,shifted=0.25,shuffled,noise; required with --data")
    rn.add_argument("--data", metavar="DIR", help="test videos (default: a fresh synthetic test split)")
    rn.add_argument("--out", default="runs/run", metavar="DIR")
    rn.add_argument("--metrics", help="comma-separated metrics (default: sync + synthetic quality on synthetic data, sync otherwise)")
    rn.add_argument("--window", type=float, metavar="S", help="scoring window (default 10.24 on synthetic data, 8.0 otherwise)")
    rn.add_argument("--n", type=int, default=32, help="clips in the synthetic test split")
    rn.add_argument("--seed", type=int, default=0)
    rn.add_argument("--no-html", action="store_true", help="do not write the HTML report (OUT/report/index.html)")
    rn.add_argument("--device", help="where systems and backbones run: cpu (default), cuda, cuda:1")
    rn.add_argument("--workers", type=int, help="scoring processes (default: one per CPU core)")
    rn.add_argument("--systems", metavar="YAML", help="where each system's own code is (default $TIVA_BENCH_SYSTEMS; see baselines/command.py)")
    rn.add_argument("--pair-by", choices=["stem", "relpath"], help="match by file stem (default) or relative path")
    rn.add_argument("--strip-suffix", metavar="S", help="remove S from the end of precomputed output names before matching")
    rn.add_argument("--strip-prefix", metavar="S", help="remove S from the start of precomputed output names before matching")
    rn.add_argument("--gen-pattern", metavar="REGEX", help="key = group 'key' (or group 1) of REGEX in precomputed output names")
    rn.add_argument("--ref-pattern", metavar="REGEX", help="key = group 'key' (or group 1) of REGEX in reference names")
    rn.add_argument("--config", metavar="YAML", help="scoring config file (see configs/default.yaml)")
    rn.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a scoring config value (repeatable)")
    _add_common(rn)

    ab = sub.add_parser("ablate", help="the paper's ablations (Tables 3, 4, 5, Figure 5) as suites: train, generate, score, tabulate",
                        description="Run an ablation suite: train each row's variant (or load its shipped checkpoint with --pretrained), "
                                    "generate the test split, score it, and write the paper-style table to OUT/tables/<suite>.{csv,md,tex} "
                                    "(Figure 5: OUT/figures/fig5.{png,pdf}). Finished rows are reused on a rerun; interrupted training resumes. "
                                    "Without --data, synthetic train/val/test splits are written under OUT/data.",
                        epilog=ABLATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ab.add_argument("suite", nargs="?", metavar="SUITE", help="a bundled suite (table3, table4, table5, fig5, all) or a path to a suite YAML file")
    ab.add_argument("--list", action="store_true", help="list the bundled suites and their rows, and exit")
    ab.add_argument("--preset", default="tiva-tiny", help="tiva-tiny (default: CPU, synthetic data) or tiva-paper (real data, GPU)")
    ab.add_argument("--data", metavar="DIR", help="a folder with train/, val/ and test/ video folders (default: synthetic splits under OUT/data)")
    ab.add_argument("--out", metavar="DIR", default="runs/ablate")
    ab.add_argument("--n", "--n-test", dest="n", type=int, default=32, help="number of test clips (default 32; under torchrun write --n-test: torchrun reads --n as an abbreviation of its own options)")
    ab.add_argument("--n-val", type=int, default=200, help="number of validation clips for L2(t_a, t_v) (default 200, as the paper)")
    ab.add_argument("--n-train", type=int, default=1000, help="synthetic training clips written when retraining (default 1000)")
    ab.add_argument("--seed", type=int, default=0, help="training and sampling seed (default 0)")
    ab.add_argument("--data-seed", type=int, default=100, help="seed of the synthetic splits (default 100: the shipped checkpoints' training data)")
    ab.add_argument("--synthetic-version", type=int, default=1, choices=[1, 2], help="synthetic benchmark version (default 1; see docs/DATA.md)")
    ab.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1")
    ab.add_argument("--pretrained", action="store_true", help="use shipped checkpoints instead of training (rows marked 'pretrained: train' are trained; fails naming any other row without one)")
    ab.add_argument("--steps", type=int, metavar="K", help="train every stage for K steps (quick checks; default: the suite's / preset's)")
    ab.add_argument("--sampling-steps", type=int, metavar="K", help="sampler steps for every row (quick checks; default 25)")
    ab.add_argument("--batch-size", type=int, default=16, help="clips per generation batch")
    ab.add_argument("--workers", type=int, default=0, help="scoring processes (default: one per CPU core)")
    _add_common(ab)

    d = sub.add_parser("demo", help="the main job on the built-in synthetic benchmark: generate, score, report", description="Write a synthetic test split, generate audio with the shipped tiva-tiny model, its no-layout ablation and sanity baselines, score everything and write the tables. No downloads.")
    d.add_argument("--out", metavar="DIR", default="runs/demo")
    d.add_argument("--n", type=int, default=32, help="number of clips")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=0)
    d.add_argument("--no-html", action="store_true", help="do not write the HTML report (OUT/report/index.html)")
    _add_common(d)
    return parser


def _print_summary(results, out_dir: str | None) -> None:
    from tiva_bench.reports.tables import render_markdown, summary_frame

    frame, info = summary_frame([results.to_dict()])
    print(render_markdown(frame, info, decimals=3), end="")
    where = "in results.json" if out_dir else "not written: pass --out DIR to keep them"
    print(f"scored {len(results.clips)} clips, skipped {len(results.skipped)}, ignored {len(results.ignored)} other files or folders (every reason {where})")
    for s in results.skipped[:10]:
        print(f"  skipped {s['clip']}: {s['reason']}")
    if len(results.skipped) > 10:
        print(f"  ... {len(results.skipped) - 10} more ({where})")
    for w in results.warnings[:10]:
        print(f"  warning: {w}")
    if out_dir:
        print(f"wrote {Path(out_dir) / 'results.json'} and {Path(out_dir) / 'per_clip.csv'}")


@contextlib.contextmanager
def prepare_out(out: str | None):
    """Check ``--out`` before any work (a folder, or creatable, and writable) and hold a lock on it
    so that a second run writing the same folder is refused at once."""
    from tiva_bench.core.files import OutputBusyError, OutputLock, check_writable_dir

    if not out:
        yield None
        return
    try:
        check_writable_dir(out)
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc}", "choose a folder you can write to") from None
    lock = OutputLock(out)
    try:
        lock.__enter__()
    except OutputBusyError as exc:
        raise ConfigError(str(exc), "wait for it to finish, or choose another --out") from None
    try:
        yield lock
    finally:
        lock.__exit__(None, None, None)


def _tqdm_progress(quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    def progress(it, total, desc="scoring"):
        return tqdm(it, total=total, desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)
    return progress


def _speaker() -> str:
    """``tiva-bench``, or ``tiva-bench: rank R of N`` in a torchrun launch, so that every line says
    which process wrote it (read from the environment: it must work before anything is checked)."""
    from tiva_bench.core.distributed import launch_from_env

    try:
        launch = launch_from_env()
    except TivaBenchError:  # incomplete torchrun variables: that error is being reported
        return "tiva-bench"
    return f"tiva-bench: {launch}" if launch.distributed else "tiva-bench"


def _notice(quiet: bool):
    return (lambda message: None) if quiet else (lambda message: print(f"{_speaker()}: {message}", file=sys.stderr))


def _print_reasons(skipped: list[dict], ignored: list[dict], limit: int = 20) -> None:
    """Why nothing was scored, on stderr (also under -q: it is the error's explanation): the first
    ``limit`` skipped clips and ignored entries, then the rest counted by kind of reason."""
    import re
    from collections import Counter

    lines = [f"  skipped {s['clip']}: {s['reason']}" for s in skipped] + [f"  ignored {i['path']}: {i['reason']}" for i in ignored]
    for line in lines[:limit]:
        print(line, file=sys.stderr)
    if len(lines) > limit:
        rest = Counter(re.sub(r"'[^']*'|\d+(\.\d+)?", "...", line.split(": ", 1)[-1])[:90] for line in lines[limit:])
        print(f"  ... and {len(lines) - limit} more:", file=sys.stderr)
        for reason, n in rest.most_common(10):
            print(f"    {n} x {reason}", file=sys.stderr)


def cmd_metrics(args: argparse.Namespace) -> int:
    from tiva_bench.metrics.registry import METRICS, resolve_metrics
    from tiva_bench.config import load_config

    if args.list:
        print(f"{'name':<12} {'dir':<4} {'header':<11} {'needs':<28} description")
        for name in METRICS:
            s = METRICS.get(name)
            print(f"{s.name:<12} {s.arrow:<4} {s.display:<11} {s.needs:<28} {s.description}")
        return EXIT_OK
    if not args.gen_dir or not args.ref_dir:
        raise ConfigError("metrics needs GEN_DIR and REF_DIR", "tiva-bench metrics GEN_DIR REF_DIR (see --help)")
    flags = {"metrics": args.metrics, "workers": args.workers, "audio.window_s": args.window, "pairing.by": args.pair_by,
             "pairing.strip_suffix": args.strip_suffix, "pairing.strip_prefix": args.strip_prefix,
             "pairing.gen_pattern": args.gen_pattern, "pairing.ref_pattern": args.ref_pattern, "device": args.device,
             "batch_size": args.batch_size, "cache_dir": args.cache_dir, "videos": args.videos,
             "recompute": True if args.recompute else None}
    cfg = load_config(args.config, args.set, flags=flags)
    resolve_metrics(cfg.metrics)  # unknown names fail before any decoding
    from tiva_bench.runner import score_folders

    from tiva_bench.core.weights import WEIGHTS

    for folder in args.weights_dir:
        WEIGHTS.add_dir(folder)
    if args.allow_unverified:
        WEIGHTS.allow_unverified = True
    from tiva_bench.core.distributed import RankGroup, launch_from_env, timeout_from_env

    launch = launch_from_env()  # under torchrun: this process's rank; rank 0 alone owns --out
    timeout_s = timeout_from_env()
    with prepare_out(args.out if launch.is_main else None), RankGroup(launch, cfg.device, timeout_s) as group:
        try:
            results = score_folders(args.gen_dir, args.ref_dir, cfg, label=args.label, progress=_tqdm_progress(args.quiet or not launch.is_main),
                                    on_notice=_notice(args.quiet), group=group)
        except NothingToScoreError as exc:
            skipped, ignored = getattr(exc, "skipped", []), getattr(exc, "ignored", [])
            _print_reasons(skipped, ignored)
            why = "the reasons are listed above" if skipped or ignored else "no file at all was found below either folder"
            raise NothingToScoreError(exc.message, f"{why}; check the folder names and --pair-by / --strip-suffix") from None
        if results is None:  # another rank of a torchrun launch: its share is in the cache, rank 0 reports
            return EXIT_OK
        if WEIGHTS.unverified:
            results.warnings.extend(f"UNVERIFIED WEIGHTS (--allow-unverified): {m}" for m in WEIGHTS.unverified.values())
            results.provenance["weights_unverified"] = dict(WEIGHTS.unverified)
        if args.out:
            results.write(args.out)
    if not args.quiet:
        _print_summary(results, args.out)
    if args.strict and results.skipped:
        print(f"--strict: {len(results.skipped)} clips were skipped", file=sys.stderr)
        return EXIT_STRICT
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from tiva_bench.core.results import load_results
    from tiva_bench.reports.stats_summary import annotate, render_latex_with_intervals, write_stats_csv
    from tiva_bench.reports.tables import write_tables

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if not args.results and not args.reported:
        raise ConfigError("report needs RESULTS files or --reported NAME", "tiva-bench report runs/run/results/* (see --help)")
    paths = write_tables(args.results, args.out, metrics, args.decimals, args.name, args.caption, args.allow_mixed) if args.results else {}
    table1 = _write_table1_report(args)
    if args.results:
        annotated = annotate([load_results(p) for p in args.results], args.resamples, args.seed, args.alpha)
        paths["stats_csv"] = write_stats_csv(annotated, Path(args.out) / f"{args.name}_stats.csv")
        if args.latex_intervals:
            paths["ci_tex"] = Path(args.out) / f"{args.name}_ci.tex"
            paths["ci_tex"].write_text(render_latex_with_intervals(annotated, metrics, args.decimals, args.caption), encoding="utf-8")
        if args.html:
            from tiva_bench.reports.html import write_html_report

            progress = None
            if not args.quiet:
                from tqdm import tqdm

                def progress(it, total):
                    return tqdm(it, total=total, desc="report pages", unit="page", file=sys.stderr, dynamic_ncols=True)

            paths["html"] = write_html_report(annotated, args.out, title=args.title, n_resamples=args.resamples, seed=args.seed, alpha=args.alpha,
                                              page_size=args.page_size, copy_media=args.copy_media, media=not args.no_media, progress=progress)
    if not args.quiet:
        print((table1 if args.reported or not paths else paths)["md"].read_text(encoding="utf-8"), end="")
        print("wrote " + ", ".join(str(p) for p in [*paths.values(), *table1.values()]))
    return EXIT_OK


def cmd_figure(args: argparse.Namespace) -> int:
    import json

    from tiva_bench.core.results import load_results
    from tiva_bench.reports import figures
    from tiva_bench.reports.stats_summary import add_intervals

    if args.figure_command is None:
        raise ConfigError("figure needs a kind", "tiva-bench figure mels|dist|layout-resolution ... (see --help)")
    out_base = Path(args.out) / "figures" / (args.name or args.figure_command.replace("-", "_"))
    if args.figure_command == "mels":
        clips = [c.strip() for c in args.clips.split(",") if c.strip()]
        paths = figures.mel_grid_from_results([load_results(p) for p in args.results], clips, out_base, window_s=args.window, frames=not args.no_frames)
    elif args.figure_command == "dist":
        metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
        results = [add_intervals(load_results(p), args.resamples) for p in args.results]
        paths = figures.plot_metric_distributions(results, out_base, metrics)
    else:
        try:
            curves = json.loads(Path(args.curves).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read curves from {args.curves}: {exc}", "give the layout_curves.json that `tiva-bench ablate` writes") from None
        paths = figures.plot_layout_resolution(curves, out_base)
    if not args.quiet:
        print("wrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK


def _write_table1_report(args: argparse.Namespace) -> dict:
    from tiva_bench.baselines.reported import load_reported
    from tiva_bench.core.results import load_results
    from tiva_bench.reports.table1 import measured_rows, write_table1

    rows = measured_rows([load_results(p) for p in args.results], args.allow_mixed)
    if args.reported:
        rows = load_reported(args.reported)["rows"] + rows
    return write_table1(rows, args.out, decimals=args.decimals, omit_empty=args.omit_empty, rank_reported=args.rank_reported)


def parse_split_counts(spec: str, default_n: int) -> dict[str, int]:
    """``"train=800,val,test=5"`` -> ``{"train": 800, "val": default_n, "test": 5}``."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, n = part.partition("=")
        try:
            counts[name] = int(n) if n else default_n
        except ValueError:
            raise ConfigError(f"--split: cannot read {n!r} as a number of clips in {part!r}") from None
        if counts[name] < 0:
            raise ConfigError(f"--split: negative count in {part!r}")
    if not counts:
        raise ConfigError("--split names no split", "e.g. --split train,val,test")
    return counts


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        from tiva_bench import synthetic

        counts = parse_split_counts(args.split, args.n)
        if args.duration < 2.0:
            raise ConfigError("--duration must be at least 2 s (events need room and a silent stretch)")
        progress = None
        if not args.quiet:
            from tqdm import tqdm

            def progress(it, total):
                return tqdm(it, total=total, desc="writing clips", unit="clip", file=sys.stderr)

        synthetic.generate(args.out, counts, args.seed, args.duration, args.workers, progress, version=args.synthetic_version)
        if not args.quiet:
            print(f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} clips to {args.out}")
        return EXIT_OK
    if args.data_command == "clip-features":
        return cmd_clip_features(args)
    raise ConfigError("data needs a sub-command", "tiva-bench data synth --help")


def cmd_clip_features(args: argparse.Namespace) -> int:
    from tiva_bench.core import data
    from tiva_bench.clip_features import clip_cache, extract_clip_features
    from tiva_bench.core.weights import WEIGHTS

    try:
        index, count = (int(x) for x in args.shard.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N, got {args.shard!r}") from None
    for folder in args.weights_dir:
        WEIGHTS.add_dir(folder)
    checkpoint = WEIGHTS.require("clip_vit_b16")  # fail before decoding anything
    if args.videos:
        items, missing = data.folder_items(args.videos), []
    else:
        if not args.root:
            raise ConfigError("--vggsound needs --root DIR (where the clips are)")
        items, missing = data.vggsound_items(args.vggsound, args.root, args.split)
    items = data.shard(items, index, count)
    from tiva_bench.models.tiva.clip_encoder import CLIPFrameEncoder

    from tiva_bench.config import parse_set_options
    from tiva_bench.models.tiva.config import preset, with_overrides

    model_cfg = with_overrides(preset(args.preset), parse_set_options(args.set))
    encoder = CLIPFrameEncoder(layers=model_cfg.clip_blocks(), patch_grid=model_cfg.patch_grid, checkpoint=checkpoint).to(args.device)
    cache = clip_cache(encoder, policy=args.window_policy, root=args.cache_dir, recompute=args.recompute)
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(it, total):
            return tqdm(it, total=total, desc=f"CLIP features {index}/{count}", unit="video", file=sys.stderr)

    summary = extract_clip_features(items, encoder, cache, args.device, args.batch_frames, progress)
    print(f"computed {summary.computed}, already cached {summary.cached}, skipped {len(summary.skipped)}, not found {len(missing)}; cache {cache.dir}")
    for s in summary.skipped[:20]:
        print(f"  skipped {s['clip']}: {s['reason']}")
    return EXIT_OK if (summary.computed + summary.cached) else EXIT_NOTHING


def cmd_weights(args: argparse.Namespace) -> int:
    from tiva_bench.core.weights import CHECKPOINTS, WEIGHTS

    for folder in args.weights_dir:
        WEIGHTS.add_dir(folder)
    names = args.names or [c.name for c in CHECKPOINTS]
    if args.action == "list":
        print(f"{'name':<25} {'on disk':<8} {'size':<9} {'hash':<14} {'licence':<32} source")
        for name in names:
            c = WEIGHTS.get(name)
            found = "yes" if WEIGHTS.find(name) else "no"
            print(f"{c.name:<25} {found:<8} {c.size:<9} {(c.hash_kind or 'none'):<14} {c.licence:<32} {c.url}")
        print(f"searched: {', '.join(str(d) for d in [*WEIGHTS.dirs, WEIGHTS.cache])}")
        return EXIT_OK
    if args.action == "path":
        for name in names:  # where the file is; `weights verify` checks it
            print(WEIGHTS.require(name, verify=False))
        return EXIT_OK
    if args.action == "verify":
        bad = 0
        for name in names:
            ok, message = WEIGHTS.verify(name)
            bad += ok is False
            print(f"{name:<25} {message}")
        return EXIT_STRICT if bad else EXIT_OK
    if not args.names:
        raise ConfigError("weights download needs the checkpoint names", "tiva-bench weights list")
    for name in names:
        print(f"{name}: {WEIGHTS.download(name, progress=not args.quiet)}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from tiva_bench.train import TrainConfig, train

    tc = TrainConfig(preset=args.preset, stage=args.stage, data=args.data, out=args.out, init=args.init, seed=args.seed,
                     checkpoint_every=args.checkpoint_every, device=args.device, cache_dir=args.cache_dir, threads=args.threads)
    for key, value in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr)):
        if value is not None:
            setattr(tc, key, {k: value for k in getattr(tc, key)})
    if args.joint_layout_loss_weight is not None:
        tc.joint_layout_loss_weight = args.joint_layout_loss_weight
    tc.init_unet = args.init_unet
    for item in args.model_set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}", "e.g. --set layout_head=per-step")
        tc.model[key.strip()] = value.strip()
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(it, total):
            return tqdm(it, total=total, file=sys.stderr, dynamic_ncols=True)

    path = train(tc, progress=progress, log=(lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr)))
    print(f"checkpoint: {path}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from tiva_bench.baselines.tiva import generate_folder

    summary = generate_folder(args.videos, args.out, checkpoint=args.checkpoint, preset_name=args.preset, seed=args.seed, steps=args.steps,
                              guidance=args.guidance, use_layout=False if args.no_layout else None, use_semantics=not args.no_semantics,
                              batch_size=args.batch_size, device=args.device, quiet=args.quiet, precision=args.precision, compile=args.compile)
    per_sample = summary["seconds_per_sample"]
    timing = f"{per_sample:.3f} s per sample after a warm-up, vocoder excluded" if per_sample is not None else "nothing timed"
    timing += f", {summary['timing']['inference']['name']}"
    print(f"wrote {summary['generated']} files to {args.out} ({timing}); skipped {len(summary['skipped'])}")
    for s in summary["skipped"][:10]:
        print(f"  skipped {s['clip']}: {s['reason']}")
    return EXIT_OK if summary["generated"] else EXIT_NOTHING


def cmd_run(args: argparse.Namespace) -> int:
    from tiva_bench.config import load_config
    from tiva_bench.run import DEFAULT_MODELS, check_systems, run_models

    if args.models is None and args.data is not None:
        raise ConfigError("run --data needs --models (the tiny default models only know the synthetic benchmark)",
                          "e.g. --models tiva=CHECKPOINT,difffoley=DIR,ground-truth")
    models = [m.strip() for m in (args.models or ",".join(DEFAULT_MODELS)).split(",") if m.strip()]
    flags = {"metrics": args.metrics, "audio.window_s": args.window, "workers": args.workers, "device": args.device,
             "pairing.by": args.pair_by, "pairing.strip_suffix": args.strip_suffix, "pairing.strip_prefix": args.strip_prefix,
             "pairing.gen_pattern": args.gen_pattern, "pairing.ref_pattern": args.ref_pattern}
    # without --data (or a config file) the synthetic benchmark's own scoring preset is the default
    cfg = load_config(args.config, args.set, preset="synthetic" if args.data is None and args.config is None else "default", flags=flags)
    from tiva_bench.metrics.registry import resolve_metrics

    resolve_metrics(cfg.metrics)
    check_systems(models, args.data, cfg, args.systems, args.device)  # every spec fails here, before --out is made
    with prepare_out(args.out):
        table = run_models(models, Path(args.out), args.data, cfg, seed=args.seed,
                           n_synth=args.n, log=(lambda m: None) if args.quiet else print, systems=args.systems, device=args.device,
                           html=not args.no_html)
    if not args.quiet:
        table1 = table.parent / "table1.md"
        print((table1 if table1.exists() else table).read_text(encoding="utf-8"), end="")
        print(f"tables in {table.parent}")
    return EXIT_OK


def cmd_ablate(args: argparse.Namespace) -> int:
    from tiva_bench import ablate

    if args.list:
        for name in ablate.bundled_suites():
            suites = ablate.load_suite(name, args.preset)
            if len(suites) > 1 or suites[0].name != name:
                print(f"{name:<7} {'suite':<10} runs {', '.join(s.name for s in suites)}")
                continue
            print(f"{name:<7} {suites[0].kind:<10} {suites[0].title}: {' | '.join(r.label for r in suites[0].rows)}")
        return EXIT_OK
    if not args.suite:
        raise ConfigError("ablate needs a SUITE", "tiva-bench ablate --list shows them; e.g. tiva-bench ablate table5 --pretrained")
    opts = ablate.AblateOptions(out=Path(args.out), preset=args.preset, data=Path(args.data) if args.data else None, n=args.n, n_val=args.n_val,
                                n_train=args.n_train, seed=args.seed, data_seed=args.data_seed, synthetic_version=args.synthetic_version,
                                device=args.device, pretrained=args.pretrained, steps=args.steps, sampling_steps=args.sampling_steps,
                                batch_size=args.batch_size, workers=args.workers)
    from tiva_bench.core.distributed import RankGroup, launch_from_env, timeout_from_env

    launch = launch_from_env()  # under torchrun: every rank trains its share, rank 0 alone generates, scores and writes
    quiet = args.quiet or not launch.is_main
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr))
    ablate.load_suite(args.suite, args.preset)  # a bad suite fails before --out is touched
    with prepare_out(args.out if launch.is_main else None), RankGroup(launch, args.device, timeout_from_env()) as group:
        written = ablate.run_suites(args.suite, opts, log, group=group)
    if not launch.is_main:
        return EXIT_OK
    for suite, paths in written.items():
        if not args.quiet:
            print(paths["md"].read_text(encoding="utf-8"))
        print(f"{suite}: " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from tiva_bench.demo import run_demo

    with prepare_out(args.out):
        run_demo(Path(args.out), n=args.n, seed=args.seed, workers=args.workers, quiet=args.quiet, html=not args.no_html)
    return EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: workers are stopped, nothing half-written is kept."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _terminate)
    handler = {"metrics": cmd_metrics, "report": cmd_report, "figure": cmd_figure, "data": cmd_data, "weights": cmd_weights, "train": cmd_train,
               "generate": cmd_generate, "run": cmd_run, "demo": cmd_demo, "ablate": cmd_ablate}[args.command]
    speaker = _speaker()
    try:
        return handler(args)
    except NothingToScoreError as exc:
        if args.debug:
            raise
        print(f"{speaker}: error: {exc}", file=sys.stderr)
        return EXIT_NOTHING
    except TivaBenchError as exc:
        if args.debug:
            raise
        print(f"{speaker}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"{speaker}: {'terminated' if terminated else 'interrupted'}; finished work is kept in the cache, rerun the same command to resume", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as exc:  # pragma: no cover - reported, not swallowed
        if args.debug:
            raise
        print(f"{speaker}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL
