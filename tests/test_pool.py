"""The pool supervisor: a worker that dies loses nothing, errors are reported, workers die with
their parent, and the worker count is capped at the usable cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.procs import alive as _alive, descendants as _descendants, pool_workers
from tiva_bench.core.pool import TaskFailure, n_workers, supervised_map, usable_cpus

REPO = Path(__file__).resolve().parents[1]


def _square_with_faults(job):
    """Workers run this: item 3 always kills its worker, item 5 kills it once, item 7 raises."""
    value, flag_dir = job
    if value == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    if value == 5:
        flag = Path(flag_dir) / "five"
        if not flag.exists():
            flag.write_text("died once")
            os.kill(os.getpid(), signal.SIGSEGV)
    if value == 7:
        raise ValueError("seven is bad")
    return value * value


def test_dead_workers_lose_nothing(tmp_path):
    notices = []
    jobs = [(v, str(tmp_path)) for v in range(12)]
    out = list(supervised_map(_square_with_faults, jobs, workers=2, on_notice=notices.append))
    assert [i for i, _ in out] == list(range(12)), "every item comes back, in input order"
    results = dict(out)
    for v in (0, 1, 2, 4, 6, 8, 9, 10, 11):
        assert results[v] == v * v
    assert results[5] == 25, "an item whose worker died once is retried in a fresh worker"
    assert isinstance(results[3], TaskFailure) and results[3].crashed and "SIGKILL" in results[3].reason and "2 times" in results[3].reason
    assert isinstance(results[7], TaskFailure) and not results[7].crashed and "ValueError: seven is bad" in results[7].reason
    assert sum("retrying" in n for n in notices) == 2  # item 3's first death and item 5's


def test_items_sent_ahead_are_not_blamed_for_a_death(tmp_path):
    """With two items in flight per worker, the item being processed when its worker dies takes the
    strike; the one sent after it goes back to the queue and is processed normally."""
    notices = []
    jobs = [(v, str(tmp_path)) for v in range(12)]
    out = list(supervised_map(_square_with_faults, jobs, workers=2, on_notice=notices.append, prefetch=2))
    assert [i for i, _ in out] == list(range(12))
    results = dict(out)
    for v in (0, 1, 2, 4, 5, 6, 8, 9, 10, 11):
        assert results[v] == v * v, (v, results[v])
    assert isinstance(results[3], TaskFailure) and results[3].crashed and "2 times" in results[3].reason
    assert isinstance(results[7], TaskFailure) and not results[7].crashed
    assert sum("retrying" in n for n in notices) == 2
    with pytest.raises(ValueError, match="prefetch"):
        list(supervised_map(_square_with_faults, jobs, workers=2, prefetch=0))


def test_inline_mode_reports_errors_without_processes(tmp_path):
    out = dict(supervised_map(_square_with_faults, [(7, str(tmp_path)), (2, str(tmp_path))], workers=1))
    assert isinstance(out[0], TaskFailure) and out[1] == 4


def test_worker_count_is_capped_at_usable_cores():
    notices = []
    assert n_workers(100, 1000, notices.append) == usable_cpus()
    assert notices and "capped" in notices[0]
    assert n_workers(0, 1000) == usable_cpus()
    assert n_workers(8, 3) == min(3, usable_cpus())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list processes")
def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tiva_bench.core.pool import supervised_map
        from tests.test_pool import _slow
        if __name__ == "__main__":
            for _ in supervised_map(_slow, list(range(50)), workers=2):
                pass
    """))
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.time() + 60
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = pool_workers(parent.pid)
        assert len(workers) >= 2, "the workers did not start"
        everything = _descendants(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in everything):
            time.sleep(0.2)
        assert not [p for p in everything if _alive(p)], "processes outlived a SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _slow(value):
    time.sleep(0.5)
    return value


def _blas_threads(_):
    """Workers run this: the thread count of every BLAS library loaded in the process."""
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the forked start method needs os.fork")
def test_forked_workers_run_one_blas_thread():
    """A parent whose OpenBLAS already runs two threads forks workers: they get one each (the
    environment variables alone do not reach a pool initialised before the fork)."""
    import multiprocessing as mp

    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, "blas"):
        parent = _blas_threads(None)
        assert parent and all(n == 2 for n in parent), "the parent's BLAS runs two threads"
        out = dict(supervised_map(_blas_threads, range(4), workers=2, ctx=mp.get_context("fork")))
    assert len(out) == 4
    assert all(counts and all(n == 1 for n in counts) for counts in out.values()), out


def _threads_and_product(_):
    """Workers run this: the process's thread count, its CPU seconds over a 0.3-s pause, and a BLAS product."""
    import numpy as np

    time.sleep(0.3)
    before = time.process_time()
    time.sleep(0.3)
    a = np.arange(300 * 300, dtype=np.float64).reshape(300, 300) / 9e4
    return len(os.listdir("/proc/self/task")), time.process_time() - before, float((a @ a).sum())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and the forked start method")
def test_forked_workers_start_no_spinning_blas_threads():
    """Limiting a forked worker's OpenBLAS to one thread makes OpenBLAS start its whole thread pool
    again, and each new thread spins on a core for about 0.1 s: the worker ends those threads.
    It keeps two threads (its own and the parent watcher), idles at no CPU, and BLAS still works."""
    import multiprocessing as mp

    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.arange(300 * 300, dtype=np.float64).reshape(300, 300) / 9e4
    expected = float(np.einsum("ij,jk->", a, a))  # not BLAS
    with threadpool_limits(2, "blas"):
        out = dict(supervised_map(_threads_and_product, range(2), workers=2, ctx=mp.get_context("fork")))
    for threads, idle_cpu_s, total in out.values():
        assert threads == 2, f"{threads} threads in a worker"
        assert idle_cpu_s < 0.05, f"{idle_cpu_s:.3f} s of CPU while idle"
        assert total == pytest.approx(expected, rel=1e-12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc")
def test_retained_memory_is_reused_without_page_faults():
    """A worker's pattern: sixteen 1-MB buffers held, then all freed, again and again. By default
    glibc hands the freed heap back to the system and every round touches fresh pages (a page
    fault per 4 KB); with the memory retained, none."""
    code = textwrap.dedent("""
        import resource, sys
        import numpy as np
        from tiva_bench.core.pool import retain_freed_memory
        if sys.argv[1] == "retain":
            assert retain_freed_memory()
        def round_of_buffers():
            held = [np.ones(1 << 17) for _ in range(16)]  # 16 x 1 MB, touched
            del held
        round_of_buffers()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            round_of_buffers()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env, check=True).stdout)
              for mode in ("default", "retain")}
    assert faults["default"] >= 5 * 1000, faults  # 4,096 pages a round
    assert faults["retain"] < 100, faults
