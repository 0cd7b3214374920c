"""Runs survive a cold compile cache: several workers, several processes at once, a damaged cache,
and a worker killed in the middle of a run.

These drive the real command line in fresh processes. Each test points numba at a fresh, empty
cache folder (``NUMBA_CACHE_DIR``), so the compiled functions of librosa and of tiva-bench are
compiled from scratch, exactly as on a fresh machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import clicks
from tests.procs import pool_workers

REPO = Path(__file__).resolve().parents[1]
METRICS = "w_dis,dtw_dis,onset_acc,onset_ap"


def _pairs(root: Path, n: int, seconds: float = 4.0) -> tuple[Path, Path]:
    gen, ref = root / "gen", root / "ref"
    gen.mkdir(parents=True, exist_ok=True)
    ref.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        times = np.sort(rng.uniform(0.2, seconds - 0.5, 4))
        sf.write(ref / f"clip{k:03d}.wav", clicks(times, seconds, seed=k), 16000)
        sf.write(gen / f"clip{k:03d}.wav", clicks(times + 0.1, seconds, seed=100 + k), 16000)
    return gen, ref


def _env(tmp: Path, numba_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "TIVA_BENCH_CACHE")}
    env.update(NUMBA_CACHE_DIR=str(numba_dir), TIVA_BENCH_CACHE=str(tmp / "tb-cache"), PYTHONPATH=str(REPO))
    return env


def _metrics(gen: Path, ref: Path, out: Path, env: dict, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tiva_bench", "metrics", str(gen), str(ref), "--metrics", METRICS, "--window", "4",
           "--workers", str(workers), "--out", str(out), "-q"]
    return subprocess.Popen(cmd, env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.fixture(scope="module")
def shared_numba(tmp_path_factory) -> Path:
    """One numba cache folder for this module: cold for the first test that uses it, warm after."""
    return tmp_path_factory.mktemp("numba-shared") / "numba"


def test_two_workers_from_a_cold_cache(tmp_path, shared_numba):
    gen, ref = _pairs(tmp_path, 16)
    rc, err = _finish(_metrics(gen, ref, tmp_path / "out", _env(tmp_path, shared_numba), workers=2))
    assert rc == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["per_clip"]) == 16 and not results["skipped"]


def test_processes_started_together_on_a_cold_cache(tmp_path):
    """Two runs share one cold cache folder, started at the same moment, twice over (such runs
    crashed every time before the cache was made safe)."""
    gen, ref = _pairs(tmp_path, 8)
    for trial in range(2):
        numba_dir = tmp_path / f"numba{trial}"
        env = _env(tmp_path, numba_dir)
        outs = [tmp_path / f"out{trial}{k}" for k in range(2)]
        for out in outs:
            out.mkdir()
        procs = [_metrics(gen, ref, out, env, workers=1) for out in outs]
        for proc in procs:
            rc, err = _finish(proc)
            assert rc == 0, f"trial {trial}: exit {rc}: {err[-2000:]}"
        for out in outs:
            assert len(json.loads((out / "results.json").read_text())["per_clip"]) == 8


def test_a_damaged_cache_is_rebuilt(tmp_path, shared_numba):
    """Every cache file truncated (as after a crash mid-write): the run still scores everything."""
    gen, ref = _pairs(tmp_path, 4)
    numba_dir = tmp_path / "numba"
    if shared_numba.is_dir():  # start from a complete cache without compiling it again
        shutil.copytree(shared_numba, numba_dir, ignore=shutil.ignore_patterns(".lock"))
    env = _env(tmp_path, numba_dir)
    (tmp_path / "first").mkdir()
    rc, err = _finish(_metrics(gen, ref, tmp_path / "first", env, workers=1))
    assert rc == 0, err
    damaged = [p for p in numba_dir.rglob("*") if p.suffix in (".nbc", ".nbi")]
    assert damaged, "numba wrote no cache files where it was told to"
    for p in damaged:
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])
    (tmp_path / "second").mkdir()
    rc, err = _finish(_metrics(gen, ref, tmp_path / "second", env, workers=1))
    assert rc == 0, err
    first = json.loads((tmp_path / "first" / "results.json").read_text())["metrics"]
    second = json.loads((tmp_path / "second" / "results.json").read_text())["metrics"]
    assert first == second


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_a_worker_killed_mid_run_loses_no_clip(tmp_path, shared_numba):
    gen, ref = _pairs(tmp_path, 48, seconds=8.0)
    out = tmp_path / "out"
    out.mkdir()
    proc = _metrics(gen, ref, out, _env(tmp_path, shared_numba), workers=2)
    killed = None
    deadline = time.time() + 300
    while proc.poll() is None and killed is None and time.time() < deadline:
        time.sleep(0.1)
        workers = sorted(pool_workers(proc.pid))
        if workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
    rc, err = _finish(proc)
    assert killed is not None, "no worker process was seen"
    assert rc == 0, err
    results = json.loads((out / "results.json").read_text())
    scored = {c["clip"] for c in results["per_clip"]}
    skipped = {s["clip"] for s in results["skipped"]}
    assert scored | skipped == {f"clip{k:03d}" for k in range(48)}
    assert all("died" in s["reason"] for s in results["skipped"])
