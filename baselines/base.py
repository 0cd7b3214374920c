"""What every adapter shares: the ``Adapter`` record, the run context and the system's Table 1 facts.

An adapter turns a test set (video items) into generated audio for one system. ``produce`` returns
a summary dict: ``generated`` (files written or found), ``skipped`` (``{"clip", "reason"}`` per
clip the system could not produce), optionally ``gen_dir`` (the folder to score when it is not
the adapter's output folder, e.g. precomputed outputs scored in place) and ``timing`` (the
paper's protocol: mean per-sample generation time over batches after a warm-up batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class SystemInfo:
    """A system's row facts for Table 1 and the conventions its outputs follow.

    group: the paper's block ("AutoRegressive", "Diffusion", "Reference", "" for unknown).
    role: ``"compared"`` (ranked) or ``"reference"`` (ground truth and sanity rows: shown, never
        ranked).
    clip_s / sample_rate: the length and rate the system writes (documentation; the scorer always
        reads the rate from the file and scores the configured window, 8 s by default).
    """

    method: str
    group: str = ""
    vis_feat: str = "-"
    guidance: str = "-"
    role: str = "compared"
    clip_s: float | None = None
    sample_rate: int | None = None
    conventions: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunContext:
    """What an adapter may need to know about the run.

    real_data: False only on the embedded synthetic benchmark (where ``tiva`` may mean the shipped
    tiny model). data_root: the folder of test videos. systems: the per-system settings (see
    ``baselines/command.py``). device: where generating systems run.
    """

    real_data: bool = True
    data_root: Path | None = None
    systems: dict = field(default_factory=dict)
    device: str = "cpu"


@dataclass
class Adapter:
    """One system: ``generate(items, out_dir, seed, ctx)`` -> summary (see the module docstring)."""

    name: str
    label: str
    produce: Callable[..., dict]
    info: SystemInfo | None = None
    kind: str = "generated"  # generated (run here), command (the system's own code), precomputed, sanity

    def generate(self, items: list, out_dir: Path, seed: int = 0, ctx: RunContext | None = None) -> dict:
        out_dir = Path(out_dir)
        if self.kind != "precomputed":  # precomputed outputs are scored in place
            out_dir.mkdir(parents=True, exist_ok=True)
        summary = self.produce(items, out_dir, seed, ctx or RunContext())
        summary.setdefault("kind", self.kind)
        return summary

    def describe(self) -> dict:
        """The record written into results provenance (``system``)."""
        info = self.info.to_dict() if self.info else {"method": self.label, "role": "compared"}
        return {"name": self.name, "label": self.label, "kind": self.kind, **info}
