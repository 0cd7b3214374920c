"""Files: content hashing, atomic writes with the user's umask, and the cache root.

Every file tiva-bench writes (results, tables, cache entries, checkpoints, downloads) goes through
``atomic_open``: the bytes go to a temporary file in the target's folder, which is renamed over the
target only when complete, so an interrupted run never leaves a half-written file. ``mkstemp``
creates files with mode 0600; they are given the mode a plain ``open`` would (0666 minus umask).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """``$TIVA_BENCH_CACHE`` or ``~/.cache/tiva_bench``."""
    return Path(os.environ.get("TIVA_BENCH_CACHE") or Path.home() / ".cache" / "tiva_bench").expanduser()


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of the file's bytes (``algorithm``: any ``hashlib`` name, e.g. sha256 or md5)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_digest(text: str, length: int = 64) -> str:
    """SHA-256 of a string (hex), cut to ``length`` characters."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class atomic_open:
    """``with atomic_open(path, "w") as fh: ...``: written to a temporary file, renamed on success.

    ``mode`` is "w" (text, UTF-8, no newline translation) or "wb". On an exception the temporary
    file is removed and ``path`` is left as it was. The folder must exist.
    """

    def __init__(self, path: str | Path, mode: str = "w"):
        if mode not in ("w", "wb"):
            raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
        self.path = Path(path)
        self.mode = mode

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())
        self.fh = os.fdopen(fd, "wb") if self.mode == "wb" else os.fdopen(fd, "w", newline="", encoding="utf-8")
        return self.fh

    def __exit__(self, exc_type, exc, tb):
        try:
            self.fh.close()
        finally:
            if exc_type is None:
                os.replace(self.tmp, self.path)
            elif os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


class OutputBusyError(Exception):
    """Another process holds the lock on an output folder."""


def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if needed and check a file can be written there.

    Raises ``NotADirectoryError`` / ``PermissionError`` / ``OSError`` with a message naming the
    path; callers turn them into one-line usage errors *before* any work is done.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{parent} is a file, so {path} cannot be created")
            break
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".tiva-bench-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        raise PermissionError(f"{path} is not writable ({exc.strerror})") from None
    finally:
        if probe.exists():
            probe.unlink()
    return path


class OutputLock:
    """An exclusive, non-blocking lock on an output folder for the lifetime of a run.

    ``with OutputLock(out):`` raises ``OutputBusyError`` at once when another process holds it
    (the lock file records that process's id). The operating system releases the lock when the
    process ends, however it ends, so a killed run never leaves a stale lock.
    """

    NAME = ".tiva-bench.lock"

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / self.NAME
        self.fh = None

    def __enter__(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform
            return self
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.fh.close()
            self.fh = None
            raise OutputBusyError(f"{self.path.parent} is being written by another tiva-bench run ({holder})") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return self

    def __exit__(self, *exc) -> bool:
        if self.fh is not None:
            self.fh.close()  # closing releases the flock
            self.fh = None
        return False
