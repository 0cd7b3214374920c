"""numba's on-disk compile cache, made safe for many processes and able to heal itself.

Why this exists
---------------
librosa (and tiva-bench's exact DTW) compile functions with numba and ``cache=True``. numba writes
the machine code of a ``@guvectorize``/``@vectorize`` function and of its wrapper as separate cache
files. When two processes compile the same function at the same moment (two scoring workers, or
two runs started together on a cold cache), the two files can come from different processes; the
wrapper then calls a symbol that does not exist and the process dies with a segmentation fault,
every time that cache entry is loaded again (numba issue 10128). By default the files live in
``site-packages/librosa/.../__pycache__``, shared by every program in the environment.

What this module does
---------------------
1. ``cache_dir()``: tiva-bench gives numba its own cache folder, one per numba / Python / librosa
   version, under the tiva-bench cache (``$TIVA_BENCH_CACHE/numba/...``), unless the user set
   ``NUMBA_CACHE_DIR``. ``tiva_bench/__init__.py`` sets it before numba is imported, so entries
   that another program poisoned in site-packages are never read.
2. ``ensure_ready(targets)``: before a process runs any compiled function, it calls the warm-up
   functions ``targets`` (``"module:function"`` strings, each exercising the compiled functions
   a stage uses, with every dtype that stage passes) while holding an exclusive file lock on the
   cache folder. Compiling, writing and loading entries therefore never overlap between processes:
   a second process waits a moment, then loads what the first one wrote.
3. The first time a cache folder is used (no ``READY`` marker, or its files changed since), the
   warm-up runs in a child process first, twice: the first child compiles and writes, the second
   only loads and runs. A child that dies (a damaged entry written by an older version or another
   tool) causes the folder to be emptied and rebuilt once; if that fails too, one line says which
   folder to delete. A segmentation fault can never reach the user's process through the cache.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from tiva_bench.core.errors import TivaBenchError
from tiva_bench.core.files import atomic_write_text, cache_root

_READY = "READY.json"
_LOCK = ".lock"
_CHECKED_IN_PROCESS: set[tuple[str, tuple[str, ...]]] = set()


class JitCacheError(TivaBenchError):
    """numba's compile cache could not be made usable."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def default_cache_dir() -> Path:
    """``<tiva-bench cache>/numba/py<X.Y>-numba<v>-llvmlite<v>-librosa<v>`` (read without importing numba)."""
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}-numba{_version('numba')}-llvmlite{_version('llvmlite')}-librosa{_version('librosa')}"
    return cache_root() / "numba" / tag


def configure_environment() -> Path:
    """Point numba at tiva-bench's cache folder (unless ``NUMBA_CACHE_DIR`` is set); returns it.

    Call before numba is imported; if numba is already imported, its configuration is reloaded.
    """
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(default_cache_dir())
    folder = Path(os.environ["NUMBA_CACHE_DIR"])
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None and getattr(numba_config, "CACHE_DIR", None) != str(folder):
        numba_config.reload_config()
    return folder


@contextlib.contextmanager
def _exclusive_lock(folder: Path, wait_s: float = 900.0):
    """An exclusive ``flock`` on ``folder/.lock`` (released when the process dies, too)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run unlocked
        yield
        return
    with open(folder / _LOCK, "a+") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise JitCacheError(f"waited {wait_s:.0f} s for another process compiling into {folder}",
                                        f"stop the other tiva-bench process, or delete {folder}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _listing(folder: Path) -> dict[str, list[int]]:
    """Every cache file below ``folder`` with its size and mtime (ns): what READY vouches for."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in (_READY, _LOCK):
            st = path.stat()
            out[str(path.relative_to(folder))] = [st.st_size, st.st_mtime_ns]
    return out


def _ready_matches(folder: Path, targets: tuple[str, ...]) -> bool:
    try:
        ready = json.loads((folder / _READY).read_text())
    except (OSError, ValueError):
        return False
    return set(targets) <= set(ready.get("targets", ())) and ready.get("files") == _listing(folder)


def run_targets(targets: tuple[str, ...] | list[str]) -> None:
    """Import and call each ``"module:function"`` warm-up (compiles or loads its numba functions)."""
    for target in targets:
        module, _, attr = target.partition(":")
        getattr(importlib.import_module(module), attr)()


def _child(targets: tuple[str, ...], folder: Path, timeout_s: float) -> str | None:
    """Run the warm-ups in a fresh interpreter; None on success, else why it failed."""
    code = "import sys, tiva_bench.core.jit_cache as j; j.run_targets(sys.argv[1:])"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder)}
    try:
        done = subprocess.run([sys.executable, "-c", code, *targets], env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"compiling took more than {timeout_s:.0f} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"the process died with {signal.Signals(-done.returncode).name}"
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return f"exit code {done.returncode}: {last}"


def _rebuild(folder: Path, targets: tuple[str, ...], timeout_s: float) -> None:
    """Compile in one child, load-and-run in a second; empty the folder and retry once on failure."""
    why = None
    for attempt in range(2):
        if attempt:
            for entry in folder.iterdir():
                if entry.name == _LOCK:
                    continue
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        why = _child(targets, folder, timeout_s) or _child(targets, folder, timeout_s)
        if why is None:
            atomic_write_text(folder / _READY, json.dumps({"targets": sorted(targets), "files": _listing(folder)}, indent=0))
            return
    raise JitCacheError(f"numba's compile cache in {folder} is unusable ({why}) even after it was rebuilt",
                        f"delete {folder} and retry; if it persists, reinstall numba and llvmlite")


def ensure_ready(targets: tuple[str, ...] | list[str], timeout_s: float = 900.0) -> Path:
    """Make the compiled functions behind ``targets`` safe to use in this process, then load them.

    Validates (and if need be rebuilds) the cache folder in child processes the first time, then
    runs the warm-ups in this process under the folder's lock. Cheap after the first call in a
    process (a set lookup) and for a folder already validated (a directory listing).
    """
    targets = tuple(sorted(set(targets)))
    folder = configure_environment()
    key = (str(folder), targets)
    if key in _CHECKED_IN_PROCESS:
        return folder
    with _exclusive_lock(folder, timeout_s):
        if not _ready_matches(folder, targets):
            _rebuild(folder, targets, timeout_s)
        run_targets(targets)
        if not _ready_matches(folder, targets):  # this process compiled something new: vouch for it
            atomic_write_text(folder / _READY, json.dumps({"targets": sorted(targets), "files": _listing(folder)}, indent=0))
    _CHECKED_IN_PROCESS.add(key)
    return folder
