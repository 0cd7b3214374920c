"""The ``tiva-bench`` command line.

Exit codes: 0 success; 1 ``--strict`` and some clip was skipped; 2 bad usage or configuration;
3 nothing could be scored; 4 unexpected internal error (rerun with ``--debug`` for a traceback).
"""

from __future__ import annotations

import argparse
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
    _add_common(m)

    r = sub.add_parser("report", help="tables (CSV, Markdown, LaTeX) from results files", description="Summarise one or more results.json files (one row each) as paper-style tables.")
    r.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or folders holding one")
    r.add_argument("--out", metavar="DIR", default=".", help="where to write summary.csv/.md/.tex (default: here)")
    r.add_argument("--metrics", help="comma-separated metric columns, in order")
    r.add_argument("--decimals", type=int, default=2)
    r.add_argument("--name", default="summary", help="file name stem of the tables")
    r.add_argument("--caption", help="LaTeX caption")
    _add_common(r)

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
    _add_common(ge)

    rn = sub.add_parser("run", help="generate with several systems, score them, write tables", description="Generate audio for a test set with each system, score every system against the references and write paper-style tables. Without --data, a fresh synthetic test split is used.", epilog="examples:\n  tiva-bench run --models tiva-tiny,tiva-tiny-nolayout,ground-truth,shuffled\n  tiva-bench run --models tiva=runs/paper/checkpoint.safetensors,difffoley=outputs/difffoley --data vggsound_test/ --metrics w_dis,dtw_dis\n\nsystems: tiva, tiva-tiny, tiva-tiny-nolayout, folder=DIR, difffoley=DIR, specvqgan=DIR, im2wav=DIR, diffsound=DIR,\n         ground-truth, shuffled, shifted[=S], noise, silence", formatter_class=argparse.RawDescriptionHelpFormatter)
    rn.add_argument("--models", default="tiva-tiny,tiva-tiny-nolayout,ground-truth,shifted=0.25,shuffled,noise", help="comma-separated systems (name or name=ARG)")
    rn.add_argument("--data", metavar="DIR", help="test videos (default: a fresh synthetic test split)")
    rn.add_argument("--out", default="runs/run", metavar="DIR")
    rn.add_argument("--metrics", help="comma-separated metrics (default: sync + synthetic quality on synthetic data, sync otherwise)")
    rn.add_argument("--window", type=float, metavar="S", help="scoring window (default 10.24 on synthetic data, 8.0 otherwise)")
    rn.add_argument("--n", type=int, default=32, help="clips in the synthetic test split")
    rn.add_argument("--seed", type=int, default=0)
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
    ab.add_argument("--n", type=int, default=32, help="number of test clips (default 32)")
    ab.add_argument("--n-val", type=int, default=200, help="number of validation clips for L2(t_a, t_v) (default 200, as the paper)")
    ab.add_argument("--n-train", type=int, default=1000, help="synthetic training clips written when retraining (default 1000)")
    ab.add_argument("--seed", type=int, default=0, help="training and sampling seed (default 0)")
    ab.add_argument("--data-seed", type=int, default=100, help="seed of the synthetic splits (default 100: the shipped checkpoints' training data)")
    ab.add_argument("--synthetic-version", type=int, default=1, choices=[1, 2], help="synthetic benchmark version (default 1; see docs/DATA.md)")
    ab.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1")
    ab.add_argument("--pretrained", action="store_true", help="use shipped checkpoints instead of training (fails naming any row without one)")
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
    _add_common(d)
    return parser


def _print_summary(results, out_dir: str | None) -> None:
    from tiva_bench.reports.tables import render_markdown, summary_frame

    frame, info = summary_frame([results.to_dict()])
    print(render_markdown(frame, info, decimals=3), end="")
    print(f"scored {len(results.clips)} clips, skipped {len(results.skipped)}, ignored {len(results.ignored)} non-media files")
    for s in results.skipped[:10]:
        print(f"  skipped {s['clip']}: {s['reason']}")
    if len(results.skipped) > 10:
        print(f"  ... {len(results.skipped) - 10} more in results.json")
    for w in results.warnings[:10]:
        print(f"  warning: {w}")
    if out_dir:
        print(f"wrote {Path(out_dir) / 'results.json'} and {Path(out_dir) / 'per_clip.csv'}")


def cmd_metrics(args: argparse.Namespace) -> int:
    from tiva_bench.metrics.registry import METRICS
    from tiva_bench.config import load_config

    if args.list:
        print(f"{'name':<12} {'dir':<4} {'header':<11} {'needs':<28} description")
        for name in METRICS:
            s = METRICS.get(name)
            print(f"{s.name:<12} {s.arrow:<4} {s.display:<11} {s.needs:<28} {s.description}")
        return EXIT_OK
    if not args.gen_dir or not args.ref_dir:
        raise ConfigError("metrics needs GEN_DIR and REF_DIR", "tiva-bench metrics GEN_DIR REF_DIR (see --help)")
    overrides = list(args.set)
    for flag, key in (("metrics", "metrics"), ("workers", "workers"), ("window", "audio.window_s"), ("pair_by", "pairing.by"),
                      ("strip_suffix", "pairing.strip_suffix"), ("strip_prefix", "pairing.strip_prefix"),
                      ("gen_pattern", "pairing.gen_pattern"), ("ref_pattern", "pairing.ref_pattern"),
                      ("device", "device"), ("batch_size", "batch_size"), ("cache_dir", "cache_dir"), ("videos", "videos")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.recompute:
        overrides.append("recompute=true")
    cfg = load_config(args.config, overrides)
    from tiva_bench.metrics.registry import resolve_metrics

    resolve_metrics(cfg.metrics)  # unknown names fail before any decoding
    from tiva_bench.runner import score_folders

    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(it, total):
            return tqdm(it, total=total, desc="scoring", unit="clip", file=sys.stderr, dynamic_ncols=True)

    results = score_folders(args.gen_dir, args.ref_dir, cfg, label=args.label, progress=progress)
    if args.out:
        results.write(args.out)
    if not args.quiet:
        _print_summary(results, args.out)
    if args.strict and results.skipped:
        print(f"--strict: {len(results.skipped)} clips were skipped", file=sys.stderr)
        return EXIT_STRICT
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from tiva_bench.reports.tables import write_tables

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    paths = write_tables(args.results, args.out, metrics, args.decimals, args.name, args.caption)
    if not args.quiet:
        print(paths["md"].read_text(encoding="utf-8"), end="")
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


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

    encoder = CLIPFrameEncoder(checkpoint=checkpoint).to(args.device)
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
        for name in names:
            print(WEIGHTS.require(name))
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
                              batch_size=args.batch_size, device=args.device, quiet=args.quiet)
    print(f"wrote {summary['generated']} files to {args.out} ({summary['seconds_per_sample']:.3f} s per sample, vocoder excluded); skipped {len(summary['skipped'])}")
    for s in summary["skipped"][:10]:
        print(f"  skipped {s['clip']}: {s['reason']}")
    return EXIT_OK if summary["generated"] else EXIT_NOTHING


def cmd_run(args: argparse.Namespace) -> int:
    from tiva_bench import synthetic
    from tiva_bench.config import ScoreConfig
    from tiva_bench.run import DEFAULT_METRICS, run_models

    cfg = ScoreConfig()
    if args.data is None:
        cfg.metrics = list(DEFAULT_METRICS)
        cfg.audio.window_s = synthetic.DURATION_S
    if args.metrics:
        cfg.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.window is not None:
        cfg.audio.window_s = args.window
    cfg.validate()
    from tiva_bench.metrics.registry import resolve_metrics

    resolve_metrics(cfg.metrics)
    table = run_models([m.strip() for m in args.models.split(",") if m.strip()], Path(args.out), args.data, cfg, seed=args.seed,
                       n_synth=args.n, log=(lambda m: None) if args.quiet else print)
    if not args.quiet:
        print(table.read_text(encoding="utf-8"), end="")
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
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    written = ablate.run_suites(args.suite, opts, log)
    for suite, paths in written.items():
        if not args.quiet:
            print(paths["md"].read_text(encoding="utf-8"))
        print(f"{suite}: " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from tiva_bench.demo import run_demo

    run_demo(Path(args.out), n=args.n, seed=args.seed, workers=args.workers, quiet=args.quiet)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = {"metrics": cmd_metrics, "report": cmd_report, "data": cmd_data, "weights": cmd_weights, "train": cmd_train, "generate": cmd_generate, "run": cmd_run, "demo": cmd_demo, "ablate": cmd_ablate}[args.command]
    try:
        return handler(args)
    except NothingToScoreError as exc:
        if args.debug:
            raise
        print(f"tiva-bench: error: {exc}", file=sys.stderr)
        return EXIT_NOTHING
    except TivaBenchError as exc:
        if args.debug:
            raise
        print(f"tiva-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tiva-bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # pragma: no cover - reported, not swallowed
        if args.debug:
            raise
        print(f"tiva-bench: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL
