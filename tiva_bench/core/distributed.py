"""Several processes on one or many machines (``torchrun``): the launch, the process group, shards.

``torchrun --nproc_per_node N -m tiva_bench metrics ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
in their environment. ``launch_from_env`` reads them (a plain run is rank 0 of 1); ``RankGroup``
joins the process group with a bounded timeout and leaves it on exit; ``shard`` deals work to the
ranks deterministically, in whole blocks, so that a rank forms the very batches one process would.

Ranks exchange Python objects only (``RankGroup.all_gather``, over gloo even when the backbones run
on GPUs: ``cpu:gloo,cuda:nccl``). A rank that stops makes the others fail at their next exchange,
and a rank that does not answer within the timeout (``$TIVA_BENCH_DIST_TIMEOUT_S``, default 30
minutes) makes them fail then: each failure is a one-line ``DistributedError`` naming the
exchange, never a hang; the command line puts the speaking rank before every message. Torch is
imported only when a process group is joined.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from tiva_bench.core.errors import ConfigError, TivaBenchError

TIMEOUT_ENV = "TIVA_BENCH_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(TivaBenchError):
    """The ranks of one launch cannot finish together: one stopped, did not answer in time, or
    they were not given the same work."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch: ``rank`` of ``world_size`` processes in all, and
    ``local_rank`` of ``local_world_size`` on this machine (it picks the GPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: it alone evaluates, writes ``--out`` and prints the summary."""
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def _int_var(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = env.get(name)
    if text is None or not text.strip():
        if default is None:
            raise ConfigError(f"{name} is not set, but WORLD_SIZE={env.get('WORLD_SIZE')} says this is one of several processes",
                              "start several processes with torchrun (it sets RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), or unset WORLD_SIZE")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number", "start several processes with torchrun, which sets it") from None


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch:
    """The launch described by torchrun's variables; ``Launch()`` (rank 0 of 1) without them or
    with ``WORLD_SIZE=1``. Raises ``ConfigError`` when they are incomplete or inconsistent."""
    env = os.environ if env is None else env
    world = _int_var(env, "WORLD_SIZE", 1)
    if world == 1:
        return Launch()
    if world < 1:
        raise ConfigError(f"WORLD_SIZE={world} must be at least 1")
    rank, local_rank = _int_var(env, "RANK"), _int_var(env, "LOCAL_RANK")
    local_world = _int_var(env, "LOCAL_WORLD_SIZE", world)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set, so the {world} processes cannot find each other", "start them with torchrun, which sets them")
    _int_var(env, "MASTER_PORT")
    if not 0 <= rank < world or not 0 <= local_rank < local_world <= world:
        raise ConfigError(f"inconsistent launch: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local_rank}, LOCAL_WORLD_SIZE={local_world}",
                          "start the processes with torchrun")
    return Launch(rank, world, local_rank, local_world)


def rank_device(device: str, launch: Launch) -> str:
    """Where this rank runs its backbones: ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per rank
    on each machine); ``cpu``, ``mps`` and an explicit ``cuda:N`` are kept as given."""
    return f"cuda:{launch.local_rank}" if launch.distributed and str(device).strip() == "cuda" else device


def shard(n_items: int, rank: int, world_size: int, block: int = 1) -> list[int]:
    """This rank's indices of ``n_items``: consecutive blocks of ``block`` items dealt round-robin
    (block ``b`` goes to rank ``b % world_size``). Every index goes to exactly one rank, counts
    differ by at most one block, and a block is never split, so batches of ``block`` items formed
    by a rank are the batches one process forms over all items."""
    if world_size < 1 or not 0 <= rank < world_size or block < 1 or n_items < 0:
        raise ValueError(f"shard({n_items}, rank={rank}, world_size={world_size}, block={block})")
    return [i for start in range(rank * block, n_items, world_size * block) for i in range(start, min(start + block, n_items))]


def timeout_from_env(env: Mapping[str, str] | None = None) -> float:
    """Seconds a rank waits for the others at an exchange: ``$TIVA_BENCH_DIST_TIMEOUT_S`` or 1800."""
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds", f"e.g. {TIMEOUT_ENV}=3600")
    return value


def backend_for(device: str) -> str:
    """gloo for everything on CPUs; with GPUs, gloo for the objects ranks exchange and nccl for
    CUDA tensors."""
    return "cpu:gloo,cuda:nccl" if str(device).startswith("cuda") else "gloo"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class RankGroup:
    """``with RankGroup(launch, device) as group:``: the process group of a launch, joined on
    entry (waiting at most ``timeout_s`` for the others) and left on exit, however the block ends.
    For a single process (``launch.distributed`` false) nothing is joined and ``all_gather``
    returns ``[value]``. On CUDA the rank's current device becomes ``cuda:LOCAL_RANK``."""

    def __init__(self, launch: Launch = Launch(), device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S):
        self.launch = launch
        self.device = device
        self.timeout_s = timeout_s
        self.backend = backend_for(device) if launch.distributed else None
        self.joined = False

    def __enter__(self) -> "RankGroup":
        if not self.launch.distributed:
            return self
        from datetime import timedelta

        import torch
        import torch.distributed as dist

        if str(self.device).startswith("cuda"):
            count = torch.cuda.device_count()
            if self.device == "cuda" and self.launch.local_rank >= count:
                raise ConfigError(f"LOCAL_RANK is {self.launch.local_rank}, but this machine has {count} CUDA devices",
                                  f"start at most {count} processes per machine (--nproc_per_node {count})")
            torch.cuda.set_device(torch.device(rank_device(self.device, self.launch)))
        try:
            dist.init_process_group(self.backend, timeout=timedelta(seconds=self.timeout_s), rank=self.launch.rank, world_size=self.launch.world_size)
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"could not join the other ranks ({_first_line(exc)})",
                                   f"check MASTER_ADDR / MASTER_PORT and that all {self.launch.world_size} processes were started") from None
        self.joined = True
        return self

    def __exit__(self, *exc) -> bool:
        if self.joined:
            import torch.distributed as dist

            self.joined = False
            if dist.is_initialized():
                dist.destroy_process_group()
        return False

    def all_gather(self, value: Any, stage: str) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order; a barrier. Raises
        ``DistributedError`` naming this rank and ``stage`` when another rank stopped or did not
        answer within the timeout."""
        if not self.launch.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.launch.world_size
        try:
            dist.all_gather_object(gathered, value)
        except RuntimeError as exc:
            detail = _first_line(exc)
            why = f"no answer from the other ranks within {self.timeout_s:g} s" if "timed out" in detail.lower() or "timeout" in detail.lower() else "another rank stopped"
            raise DistributedError(f"{why} at the {stage} exchange ({detail}); a stopped rank prints its own reason",
                                   f"see the other ranks' messages; a slow rank needs a larger {TIMEOUT_ENV}") from None
        return gathered
