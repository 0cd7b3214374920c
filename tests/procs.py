"""Process helpers for tests: the command line in a subprocess, and the process table (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args, check_rc=None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m tiva_bench ARGS`` with output captured; asserts the exit code when ``check_rc`` is
    given. ``env``: variables added to this process's environment."""
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout + proc.stderr
    return proc


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.add(int(entry.name))
    return found


def descendants(pid: int) -> set[int]:
    out, frontier = set(), {pid}
    while frontier:
        nxt = set()
        for p in frontier:
            nxt |= children(p)
        nxt -= out
        out |= nxt
        frontier = nxt
    return out


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "forkserver"  # gone: not counted as a worker


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent_of(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def pool_workers(pid: int) -> set[int]:
    """Worker processes of a run: forked from it directly (same command line) or from its forkserver."""
    own = cmdline(pid)
    out = set()
    for p in descendants(pid):
        if not alive(p):
            continue
        parent = parent_of(p)
        if (parent == pid and cmdline(p) == own) or (parent is not None and parent != pid and "forkserver" in cmdline(parent)):
            out.add(p)
    return out
