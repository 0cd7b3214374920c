"""Several ranks (torchrun, gloo on CPU): shards, launch variables, exchanges that fail instead of
hanging."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tiva_bench.core.distributed import Launch, launch_from_env, rank_device, shard, timeout_from_env
from tiva_bench.core.errors import ConfigError

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
            out, err = proc.communicate(timeout=240)
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
