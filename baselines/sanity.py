"""Reference and sanity rows made from the references themselves: shown in tables, never ranked.

``ground-truth`` (the best any system can do), ``shuffled`` (another clip's reference: chance
level for synchronisation), ``shifted`` / ``shifted=S`` (every sound S seconds later, default
0.5), ``noise`` and ``silence`` (degenerate outputs). Each writes one float wav per clip at the
reference's native rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from tiva_bench.baselines import dummy
from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.core.audio import decode_audio
from tiva_bench.core.errors import ConfigError
from tiva_bench.core.media_write import write_audio


def _reference_audio(item) -> tuple[np.ndarray, int]:
    wav = Path(item.path).with_suffix(".wav")
    return decode_audio(wav if wav.exists() else item.path)


def _from_references(name: str, label: str, make: Callable) -> Adapter:
    def produce(items, out_dir: Path, seed: int, ctx: RunContext) -> dict:
        refs = [_reference_audio(i) for i in items]
        for k, item in enumerate(items):
            sr = refs[k][1]
            write_audio(out_dir / Path(item.key).with_suffix(".wav"), make([r[0] for r in refs], k, sr, seed), sr)
        return {"generated": len(items), "skipped": []}

    info = SystemInfo(method=label, group="Reference", role="reference", conventions="made from the references")
    return Adapter(name, label, produce, info, kind="sanity")


def ground_truth(arg=None, ctx=None) -> Adapter:
    return _from_references("ground-truth", "Ground truth", lambda refs, k, sr, seed: dummy.ground_truth(refs[k]))


def shuffled(arg=None, ctx=None) -> Adapter:
    return _from_references("shuffled", "Shuffled GT", lambda refs, k, sr, seed: dummy.shuffled(refs, k))


def shifted(arg=None, ctx=None) -> Adapter:
    try:
        lag = float(arg or 0.5)
    except ValueError:
        raise ConfigError(f"shifted={arg}: the lag must be a number of seconds", "e.g. shifted=0.25") from None
    return _from_references("shifted", f"GT shifted {lag:g} s", lambda refs, k, sr, seed: dummy.shifted(refs[k], sr, lag))


def noise(arg=None, ctx=None) -> Adapter:
    return _from_references("noise", "Noise", lambda refs, k, sr, seed: dummy.noise(refs[k], seed=seed + k))


def silence(arg=None, ctx=None) -> Adapter:
    return _from_references("silence", "Silence", lambda refs, k, sr, seed: dummy.silence(refs[k]))
