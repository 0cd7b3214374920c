"""One supervisor for every parallel stage: worker processes that may die without losing work.

``supervised_map(fn, items, workers=...)`` runs ``fn(item)`` in worker processes and yields
``(index, outcome)`` in input order, where ``outcome`` is ``fn``'s return value or a ``TaskFailure``.

Guarantees (tested in tests/test_pool.py):

* **A worker that dies loses nothing.** A worker processes its items in the order it was sent
  them (one at a time, or ``prefetch`` sent ahead), so when a worker dies (segmentation fault,
  out-of-memory kill, SIGKILL) the supervisor knows which item it was processing: the first it
  had not answered. That item is retried once in a freshly started worker (items sent after it go
  back to the queue, unblamed); an item that kills its worker twice becomes a ``TaskFailure``
  naming the signal, and every other item is still processed.
* **An exception inside ``fn``** becomes a ``TaskFailure`` with ``"TypeName: message"``; the worker
  lives on. An exception in the initializer is raised in the caller (it would hit every item).
* **Workers die with their parent.** Each worker watches its parent's liveness and its task pipe,
  and exits when either goes away, so killing the main process (even with SIGKILL) leaves no
  worker behind; the supervisor terminates its workers on any exit, Ctrl-C and SIGTERM included.
  Workers ignore SIGINT: a Ctrl-C is handled once, by the main process.
* **One thread per worker** in BLAS/OpenMP (``single_thread_libraries``), also where the workers
  are forked from a process whose OpenBLAS already runs several threads, and no helper thread
  left spinning by that limit (``stop_openblas_threads``).
* **Worker count** is capped at the CPU cores this process may use (``usable_cpus``); the cap is
  reported through ``on_notice``.

``workers <= 1`` runs everything in the calling process (no retry is possible there: a crash in
``fn`` is a crash of the caller), which keeps single-process debugging simple.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

from threadpoolctl import ThreadpoolController

from tiva_bench.core.errors import TivaBenchError

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class WorkerStartError(TivaBenchError):
    """Worker processes fail before doing any work (their set-up raises or they die at start)."""


@dataclass
class TaskFailure:
    """An item that could not be processed: ``reason`` is one line; ``crashed`` when a worker died."""

    reason: str
    crashed: bool = False


def usable_cpus() -> int:
    """CPU cores this process may run on (affinity-aware where the OS tells), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def n_workers(requested: int, n_items: int, on_notice: Callable[[str], None] | None = None) -> int:
    """``requested`` (0 = one per usable core) capped at the usable cores and the item count."""
    cores = usable_cpus()
    n = requested if requested > 0 else cores
    if n > cores:
        if on_notice is not None:
            on_notice(f"--workers {requested} capped at {cores}: this machine has {cores} usable CPU cores")
        n = cores
    return max(1, min(n, n_items))


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown cause"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker as soon as the supervising process is gone (checked every 0.5 s)."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass
        if os.getppid() == 1 and parent_pid != 1:
            os._exit(1)


def limit_threads_here() -> None:
    """One thread in every BLAS/OpenMP pool already loaded into this process, and in those loaded later.

    The environment variables reach only libraries that start after they are set; a worker forked
    from a process that already initialised OpenBLAS (numpy) inherits its thread count, and two
    such workers on two cores oversubscribe them (3x slower, measured). ``threadpoolctl`` sets the
    live pools.
    """
    os.environ.update({k: "1" for k in THREAD_VARS})
    os.environ["MKL_THREADING_LAYER"] = "SEQUENTIAL"  # MKL loaded later (the sync FFT) starts no OpenMP runtime
    for lib in ThreadpoolController().lib_controllers:
        if lib.num_threads != 1:
            lib.set_num_threads(1)
            if lib.internal_api == "openblas":
                stop_openblas_threads(lib.filepath)


def stop_openblas_threads(filepath: str) -> bool:
    """End the helper threads of the OpenBLAS library at ``filepath`` (already loaded), as OpenBLAS
    itself does before a fork; its later calls at one thread start none. Returns False where the
    library has no such entry point (nothing changes).

    In a forked process OpenBLAS answers ``openblas_set_num_threads`` (even with 1) by starting its
    thread pool again at its full size, and each new thread spins on a core for about 0.1 s
    waiting for work: two such threads per OpenBLAS library (numpy and scipy each ship one) in
    each of two workers took about 0.4 s of CPU from the workers' first items on two cores
    (measured: the first chunk of pairs ran at 2.2x the time of the next).
    """
    try:
        shutdown = ctypes.CDLL(filepath).blas_thread_shutdown_
    except (OSError, AttributeError):
        return False
    shutdown.restype = ctypes.c_int
    shutdown()
    return True


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def retain_freed_memory(limit_bytes: int = 64 << 20) -> bool:
    """Make glibc's allocator keep freed memory for reuse in this process: blocks below
    ``limit_bytes`` come from the heap instead of fresh ``mmap`` pages, and the heap is not handed
    back to the system until ``4 * limit_bytes`` lie free at its top.

    A worker that allocates and frees the same few megabytes for every item otherwise takes a page
    fault for every 4 KB it touches again (about 80 per pair of clips on the sync path, 5-10% of its
    time in a virtual machine, measured); with this its memory stays at its working set. Returns
    False where the C library is not glibc (nothing changes).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(limit_bytes)) and mallopt(_M_TRIM_THRESHOLD, int(4 * limit_bytes)))


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _stop_signals_held():
    """Hold Ctrl-C and SIGTERM while a worker is started: a signal whose handler raises while
    ``fork`` runs its at-fork hooks is swallowed there ("Exception ignored"), and the run would
    carry on as if it had never come. Held, it is delivered on leaving, in ordinary code."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _worker_main(conn, fn, initializer, initargs, parent_pid: int, single_thread: bool) -> None:  # pragma: no cover - runs in children
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # a forked worker inherits the mask its parent held while starting it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    try:
        if single_thread:
            limit_threads_here()
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:  # reported once, then the supervisor raises
        try:
            conn.send(("init_error", None, f"{type(exc).__name__}: {exc}"))
        finally:
            os._exit(3)
    conn.send(("ready", None, None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the supervisor is gone
        if message is None:
            os._exit(0)
        index, item = message
        try:
            result = ("ok", index, fn(item))
        except Exception as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
            result = ("error", index, f"{type(exc).__name__}: {exc}{where}")
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            os._exit(0)
        except Exception as exc:  # the result cannot be pickled
            conn.send(("error", index, f"result could not be sent back: {type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, fn, initializer, initargs, single_thread: bool):
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child_conn, fn, initializer, initargs, os.getpid(), single_thread), daemon=True)
        with _stop_signals_held():
            self.process.start()
        child_conn.close()
        self.tasks: deque[tuple[int, Any]] = deque()  # sent, not yet answered; the first is being processed
        self.ready = False
        self.fresh_only: tuple[int, Any] | None = None  # a retried item reserved for this new worker

    def send(self, index: int, item: Any) -> None:
        self.tasks.append((index, item))
        self.conn.send((index, item))

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass

    def stop(self, grace_s: float = 2.0) -> None:
        self.ask_to_stop()
        self.process.join(grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def default_context():
    """How workers start: ``fork`` where it is safe (Linux, no other thread in this process, no torch
    loaded, whose thread pools do not survive a fork): workers start at once with what this process
    already imported and compiled. Otherwise ``forkserver`` (safe with threads), else ``spawn``."""
    methods = mp.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods and threading.active_count() == 1 and "torch" not in sys.modules:
        return mp.get_context("fork")
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_inline(fn, items, initializer, initargs) -> Iterator[tuple[int, Any]]:
    if initializer is not None:
        initializer(*initargs)
    for index, item in enumerate(items):
        try:
            yield index, fn(item)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:
            yield index, TaskFailure(f"{type(exc).__name__}: {exc}")


def supervised_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 0, initializer: Callable | None = None,
                   initargs: tuple = (), retries: int = 1, ctx=None, on_notice: Callable[[str], None] | None = None,
                   single_thread_libraries: bool = True, prefetch: int = 1) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(item) or TaskFailure)`` for every item, in input order.

    ``fn``, ``initializer`` and the items must be picklable (module-level functions). ``retries``:
    how many times an item whose worker died is given to a fresh worker before it is failed.
    ``single_thread_libraries`` gives every worker one OMP/BLAS/numba thread (the parallelism is
    across items): set in the environment before the workers start, and in the thread pools the
    worker already holds (``limit_threads_here``) before the initializer runs. ``prefetch``: items
    sent to a worker ahead of its answers (2 keeps a worker busy while the supervisor takes in its
    last result; only for small items and results, which fit the pipe's buffers). When a worker dies,
    the item it was processing (the first it had not answered) takes the strike and the items sent
    after it go back to the queue. Raises ``WorkerStartError`` when workers cannot start at all.
    """
    if prefetch < 1:
        raise ValueError(f"prefetch must be at least 1, got {prefetch}")
    items = list(items)
    count = n_workers(workers, len(items), on_notice)
    if count <= 1 or len(items) <= 1:
        yield from _run_inline(fn, items, initializer, initargs)
        return
    ctx = ctx or default_context()
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    if single_thread_libraries:
        os.environ.update({k: "1" for k in THREAD_VARS})
    pool: list[_Worker] = []
    try:
        pool = [_Worker(ctx, fn, initializer, initargs, single_thread_libraries) for _ in range(count)]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    queue = deque(enumerate(items))
    strikes: dict[int, int] = {}
    done: dict[int, Any] = {}
    next_out, finished, deaths_without_progress = 0, 0, 0
    try:
        while finished < len(items):
            for w in pool:
                if not w.ready:
                    continue
                if w.fresh_only is not None and not w.tasks:
                    w.send(*w.fresh_only)
                    w.fresh_only = None
                while w.fresh_only is None and queue and len(w.tasks) < prefetch:
                    w.send(*queue.popleft())
            by_handle = {}
            for w in pool:
                by_handle[w.conn] = w
                by_handle[w.process.sentinel] = w
            for handle in wait(list(by_handle)):
                w = by_handle[handle]
                if w not in pool:
                    continue
                while w.conn.poll():  # results first: a worker may send its last result and then die
                    try:
                        kind, index, payload = w.conn.recv()
                    except (EOFError, OSError):
                        break
                    if kind == "ready":
                        w.ready = True
                    elif kind == "init_error":
                        raise WorkerStartError(f"worker processes could not start: {payload}")
                    else:
                        w.tasks.popleft()
                        deaths_without_progress = 0
                        done[index] = payload if kind == "ok" else TaskFailure(payload)
                        finished += 1
                if w.process.is_alive():
                    continue
                w.process.join()
                cause = _signal_name(w.process.exitcode)
                pool.remove(w)
                w.conn.close()
                deaths_without_progress += 1
                if deaths_without_progress > 2 * count + 2 * retries + 2:
                    raise WorkerStartError(f"worker processes keep dying ({cause}) without finishing any item",
                                           "rerun with --workers 1 to see the error, or --debug")
                retry = None
                queue.extendleft(reversed(list(w.tasks)[1:]))  # sent ahead, never started: back to the front, no strike
                if w.tasks:
                    index, item = w.tasks[0]
                    strikes[index] = strikes.get(index, 0) + 1
                    if strikes[index] > retries:
                        done[index] = TaskFailure(f"the worker process died ({cause}) {strikes[index]} times while processing it", crashed=True)
                        finished += 1
                    else:
                        retry = w.tasks[0]
                        if on_notice is not None:
                            on_notice(f"a worker process died ({cause}); retrying its item in a fresh worker")
                if finished < len(items) and (queue or retry is not None or not pool):
                    fresh = _Worker(ctx, fn, initializer, initargs, single_thread_libraries)
                    fresh.fresh_only = retry
                    pool.append(fresh)
            while next_out in done:
                yield next_out, done.pop(next_out)
                next_out += 1
    finally:
        for w in pool:
            w.ask_to_stop()  # all at once: the workers exit (and free their memory) side by side
        for w in pool:
            w.stop()
