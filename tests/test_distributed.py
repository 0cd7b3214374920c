"""Several ranks (torchrun, gloo on CPU): shards, launch variables, exchanges that fail instead of
hanging, and `metrics` on two processes giving exactly the one-process results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf

from tiva_bench import synthetic
from tiva_bench.core.distributed import Launch, launch_from_env, rank_device, shard, timeout_from_env
from tiva_bench.core.errors import ConfigError
from tiva_bench.extract import ExtractionReport, merge_reports

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_ENV = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}


def _owner(i: int, block: int, world: int) -> int:
    """Reference: index i lies in block i // block, dealt to rank (block number) % world."""
    return (i // block) % world


@pytest.mark.parametrize("n, world, block", [(0, 2, 1), (1, 3, 1), (10, 2, 1), (20, 2, 4), (23, 3, 4), (5, 8, 2), (40, 4, 16)])
def test_shard_deals_whole_blocks_round_robin(n, world, block):
    shares = [shard(n, r, world, block) for r in range(world)]
    for r, share in enumerate(shares):
        assert share == [i for i in range(n) if _owner(i, block, world) == r]
    assert sorted(i for share in shares for i in share) == list(range(n))
    n_blocks = [len({i // block for i in share}) for share in shares]
    assert max(n_blocks) - min(n_blocks) <= 1


def test_shard_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError):
        shard(4, 2, 2)


def test_launch_from_env():
    assert launch_from_env({}) == Launch() and not Launch().distributed
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == Launch()
    launch = launch_from_env(TORCHRUN_ENV)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.local_world_size) == (3, 4, 1, 2)
    assert launch.distributed and not launch.is_main
    for broken in ({"MASTER_ADDR": ""}, {"RANK": "x"}, {"RANK": "4"}, {"LOCAL_RANK": "2"}, {"MASTER_PORT": "http"}):
        with pytest.raises(ConfigError):
            launch_from_env({**TORCHRUN_ENV, **broken})
    with pytest.raises(ConfigError, match="RANK is not set"):
        launch_from_env({k: v for k, v in TORCHRUN_ENV.items() if k != "RANK"})


def test_each_rank_takes_the_gpu_of_its_local_rank():
    launch = launch_from_env(TORCHRUN_ENV)
    assert rank_device("cuda", launch) == "cuda:1"
    assert rank_device("cuda:0", launch) == "cuda:0"  # given explicitly: kept
    assert rank_device("cpu", launch) == "cpu"
    assert rank_device("cuda", Launch()) == "cuda"


def test_timeout_from_env():
    assert timeout_from_env({}) == 1800.0
    assert timeout_from_env({"TIVA_BENCH_DIST_TIMEOUT_S": "90"}) == 90.0
    for bad in ("0", "-5", "nan", "inf", "soon"):
        with pytest.raises(ConfigError):
            timeout_from_env({"TIVA_BENCH_DIST_TIMEOUT_S": bad})


def test_merge_reports_sums_counts_and_lists_failures_in_file_order():
    parts = [ExtractionReport(3, 1, {"c.wav": "bad c"}), ExtractionReport(2, 0, {"a.wav": "bad a", "z.wav": "bad z"})]
    merged = merge_reports(parts, ["a.wav", "b.wav", "c.wav"])
    assert (merged.computed, merged.from_cache) == (5, 1)
    assert list(merged.failed.items()) == [("a.wav", "bad a"), ("c.wav", "bad c"), ("z.wav", "bad z")]


# ---------------------------------------------------------------- processes

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_env(rank: int, port: int, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), **extra}


def _start_ranks(commands: list[list[str]], envs: list[dict]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for cmd, env in zip(commands, envs)]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=500)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


EXCHANGE_PROBE = textwrap.dedent("""\
    import os, sys, time
    from pathlib import Path
    import torch.distributed  # slow to import on a busy machine: both ranks do it before the 4-s clock runs
    from tiva_bench.core.distributed import DistributedError, RankGroup, launch_from_env
    launch = launch_from_env()
    ready = Path(os.environ["PROBE_DIR"])
    (ready / f"ready{launch.rank}").touch()
    while not (ready / f"ready{1 - launch.rank}").exists():
        time.sleep(0.05)
    with RankGroup(launch, "cpu", timeout_s=4) as group:
        assert group.all_gather(launch.rank * 10, "first") == [0, 10]
        if launch.rank == 1:
            time.sleep(120)  # never reaches the second exchange (the test ends it)
        t0 = time.monotonic()
        try:
            group.all_gather("x", "second")
        except DistributedError as exc:
            print(f"{time.monotonic() - t0:.1f} {exc}")
            sys.exit(7)
""")


def test_an_exchange_waits_at_most_the_timeout_then_names_it(tmp_path):
    port = _free_port()
    code = [sys.executable, "-c", EXCHANGE_PROBE]
    rank0, rank1 = (subprocess.Popen(code, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_rank_env(r, port, PROBE_DIR=str(tmp_path)), cwd=REPO)
                    for r in (0, 1))
    try:
        out, err = rank0.communicate(timeout=120)
    finally:
        rank0.kill()
        rank1.kill()
        rank1.communicate()
    assert rank0.returncode == 7, err[-2000:]
    waited, message = out.strip().split(" ", 1)
    assert 3.0 <= float(waited) < 20.0
    assert "no answer from the other ranks within 4 s at the second exchange" in message and "\n" not in message


@pytest.fixture(scope="module")
def synth_gen_ref(tmp_path_factory):
    """10 reference clips of the synthetic benchmark (audio, video, class) and 10 generated
    stand-ins: the audio of another seed's clips under the same names (10 clips: IS takes 10 splits)."""
    root = tmp_path_factory.mktemp("dist")
    synthetic.generate(root / "ref", {"test": 10}, seed=3, workers=1)
    synthetic.generate(root / "other", {"test": 10}, seed=4, workers=1)
    gen = root / "gen"
    gen.mkdir()
    for wav in sorted((root / "other" / "test").glob("*.wav")):
        y, sr = sf.read(wav, dtype="float32")
        sf.write(gen / wav.name, y, sr, subtype="FLOAT")
    return root, gen, root / "ref" / "test"


METRICS = "fad_synth,kl_synth,is_synth,class_acc,w_dis"


def _metrics_args(gen, ref, cache, out) -> list[str]:
    return ["metrics", str(gen), str(ref), "--metrics", METRICS, "--device", "cpu", "--window", str(synthetic.DURATION_S),
            "--batch-size", "4", "--workers", "1", "--cache-dir", str(cache), "--out", str(out), "-q"]


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_give_the_one_process_results(synth_gen_ref, tmp_path):
    root, gen, ref = synth_gen_ref
    # torchrun gives each rank one OpenMP thread; the one-process run gets the same, so both use
    # the same CPU kernels (a backbone's outputs may differ in the last bits across thread counts)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    one = subprocess.run([sys.executable, "-m", "tiva_bench", *_metrics_args(gen, ref, tmp_path / "cache1", tmp_path / "one")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=500)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tiva_bench",
                          *_metrics_args(gen, ref, tmp_path / "cache2", tmp_path / "two")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=500)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    # every set value, interval and per-clip value, bit for bit: each rank forward-passes the very
    # batches one process forms (whole batches are dealt), and every sum runs over the same rows
    for key in ("metrics", "per_clip", "skipped", "ignored", "warnings", "n_scored"):
        assert b[key] == a[key], key
    assert a["n_scored"] == 10 and all(v["value"] is not None for v in a["metrics"].values())
    assert {k: v for k, v in b["config"].items() if k != "cache_dir"} == {k: v for k, v in a["config"].items() if k != "cache_dir"}
    # both ranks scored clips and wrote features into the shared cache; rank 0 evaluated them all
    ranks = b["provenance"]["distributed"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and b["provenance"]["distributed"]["world_size"] == 2
    assert [r["clips_scored"] for r in ranks] == [5, 5]
    assert [r["features_computed"] for r in ranks] == [12, 8]  # 20 files, 5 batches of 4 dealt 3 and 2
    total = a["provenance"]["extractors"]["synth_classifier"]["computed"]
    assert total == 20 == b["provenance"]["extractors"]["synth_classifier"]["computed"]
    assert len(list((tmp_path / "cache2" / "features").rglob("*.npz"))) == total
    assert not list((tmp_path / "two").glob("rank*")) and two.stdout.strip() == ""  # -q: nobody prints; rank 0 alone wrote --out


@pytest.mark.slow
def test_a_failing_rank_stops_the_others_with_one_line_each(synth_gen_ref, tmp_path):
    """Rank 1 cannot write its cache (a file stands where the folder should be): it exits with
    its own message, and rank 0 stops at the next exchange instead of waiting."""
    root, gen, ref = synth_gen_ref
    (tmp_path / "not_a_folder").write_text("")
    port = _free_port()
    args = ["metrics", str(gen), str(ref), "--metrics", "fad_synth,w_dis", "--window", str(synthetic.DURATION_S), "--workers", "1", "-q"]
    cmd = [sys.executable, "-m", "tiva_bench", *args]
    t0 = time.monotonic()
    rank0, rank1 = _start_ranks([[*cmd, "--out", str(tmp_path / "out")], cmd],
                                [_rank_env(0, port, TIVA_BENCH_CACHE=str(tmp_path / "cache"), TIVA_BENCH_DIST_TIMEOUT_S="900"),
                                 _rank_env(1, port, TIVA_BENCH_CACHE=str(tmp_path / "not_a_folder"), TIVA_BENCH_DIST_TIMEOUT_S="900")])
    assert time.monotonic() - t0 < 400  # rank 0 stopped when rank 1 left, long before the 900-s timeout
    assert rank1.returncode != 0 and rank0.returncode != 0
    line0, line1 = rank0.stderr.strip(), rank1.stderr.strip()
    assert "\n" not in line0 and line0.startswith("tiva-bench: rank 0 of 2: error: another rank stopped at the"), line0
    assert "\n" not in line1 and line1.startswith("tiva-bench: rank 1 of 2:") and "not_a_folder" in line1, line1
    assert not (tmp_path / "out" / "results.json").exists()
