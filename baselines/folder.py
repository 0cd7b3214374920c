"""Precomputed outputs: ``folder=DIR`` and the shared code of every ``name=DIR`` system.

The files are scored where they are (nothing is copied): ``run`` pairs them with the references
by name with the same pairing options as ``tiva-bench metrics`` (``--strip-suffix``, patterns,
``--pair-by relpath``), reads each file's native sample rate and scores the configured window (the
first 8 s by default), so a 10-s SpecVQGAN clip and an 8-s Diff-Foley clip are both cut to 8 s.
Precomputed rows have no generation time ('-' in Table 1).
"""

from __future__ import annotations

from pathlib import Path

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.core.audio import MEDIA_EXTENSIONS
from tiva_bench.core.errors import ConfigError


def media_files(root: Path) -> list[Path]:
    """Media files below ``root`` (recursive, sorted), hidden files and folders left out."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def require_folder(name: str, directory: str | None) -> Path:
    """The outputs folder of ``name=DIR``, checked before any work (one-line errors)."""
    if not directory:
        raise ConfigError(f"'{name}' needs its generated files: give the folder as {name}=DIR",
                          f"generate with {name}'s own code, then --models {name}=path/to/outputs")
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{name}={directory}: the folder does not exist or is not a folder", "give the folder holding the generated audio files")
    if not media_files(path):
        raise ConfigError(f"{name}={directory}: the folder holds no audio or video files", "point it at the folder of generated outputs")
    return path


def precomputed(name: str, label: str, directory: str | None, info: SystemInfo) -> Adapter:
    """An adapter that scores the files of ``directory`` in place (validated now)."""
    folder = require_folder(name, directory)

    def produce(items, out_dir: Path, seed: int, ctx: RunContext) -> dict:
        files = media_files(folder)
        return {"generated": len(files), "skipped": [], "gen_dir": str(folder), "source": str(folder.resolve())}

    return Adapter(name, label, produce, info, kind="precomputed")


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    """``folder=DIR``: any system's outputs; the row is named after the folder."""
    folder = require_folder("folder", arg)
    name = folder.resolve().name
    return precomputed(name, name, arg, SystemInfo(method=name, conventions="precomputed outputs, scored in place"))
