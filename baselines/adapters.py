"""Adapters: every system that produces audio for a test set, behind one interface.

``get_adapter("name")`` or ``get_adapter("name=ARG")``:

| name | what it writes |
|---|---|
| ``tiva`` / ``tiva-tiny`` | the shipped tiva-tiny checkpoint; ``tiva=PATH`` any TiVA checkpoint |
| ``tiva-tiny-nolayout`` | the shipped no-layout ablation |
| ``folder=DIR`` | precomputed outputs of any system (published demo files, another toolkit) |
| ``difffoley=DIR``, ``specvqgan=DIR``, ``im2wav=DIR``, ``diffsound=DIR`` | the same, named for the table |
| ``ground-truth``, ``shuffled``, ``shifted`` (``shifted=0.5``), ``noise``, ``silence`` | sanity baselines made from the references |

Systems whose own code and weights tiva-bench does not ship (Diff-Foley, SpecVQGAN, IM2WAV,
DiffSound) are scored from their generated files; naming one without a folder is an error that
says so.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from tiva_bench.baselines import dummy
from tiva_bench.baselines.tiva import generate_folder
from tiva_bench.core.errors import ConfigError
from tiva_bench.core.registry import Registry
from tiva_bench.core.audio import decode_audio
from tiva_bench.core.audio import MEDIA_EXTENSIONS


@dataclass
class Adapter:
    name: str
    label: str
    produce: Callable[[list, Path, int], dict]  # (items with .key/.path/.audio_path, out_dir, seed) -> summary

    def generate(self, items: list, out_dir: Path, seed: int = 0) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        return self.produce(items, out_dir, seed)


def _reference_audio(item) -> tuple[np.ndarray, int]:

    wav = Path(item.path).with_suffix(".wav")
    return decode_audio(wav if wav.exists() else item.path)


def _from_references(make: Callable) -> Callable:
    def produce(items, out_dir, seed):
        refs = [_reference_audio(i) for i in items]
        for k, item in enumerate(items):
            sr = refs[k][1]
            wav = make([r[0] for r in refs], k, sr, seed)
            sf.write(out_dir / f"{Path(item.key).name}.wav", np.asarray(wav, np.float32), sr, subtype="FLOAT")
        return {"generated": len(items), "skipped": []}
    return produce


def _tiva(checkpoint: str | None, preset: str | None) -> Callable:
    def produce(items, out_dir, seed):
        folder = Path(items[0].path).parent if items else out_dir
        return generate_folder(folder, out_dir, checkpoint=checkpoint, preset_name=preset, seed=seed, quiet=True)
    return produce


def _folder(name: str, directory: str | None) -> Callable:
    if not directory:
        raise ConfigError(f"'{name}' is scored from its generated files: give the folder as {name}=DIR",
                          f"generate with {name}'s own code, then --models {name}=path/to/outputs")

    def produce(items, out_dir, seed):
        src = Path(directory)
        if not src.is_dir():
            raise ConfigError(f"{name}: {src} is not a folder")

        by_stem = {p.stem: p for p in src.rglob("*") if p.suffix.lower() in MEDIA_EXTENSIONS}
        copied, missing = 0, []
        for item in items:
            stem = Path(item.key).name
            if stem in by_stem:
                shutil.copy(by_stem[stem], out_dir / by_stem[stem].name)
                copied += 1
            else:
                missing.append({"clip": stem, "reason": f"no output named {stem} in {src}"})
        return {"generated": copied, "skipped": missing}
    return produce


ADAPTERS: Registry[Callable[[str | None], Adapter]] = Registry("model")
ADAPTERS.register("tiva", lambda arg: Adapter("tiva", "TiVA" if arg else "TiVA (tiny)", _tiva(arg, None if arg else "tiva-tiny")))
ADAPTERS.register("tiva-tiny", lambda arg: Adapter("tiva-tiny", "TiVA (tiny)", _tiva(None, "tiva-tiny")))
ADAPTERS.register("tiva-tiny-nolayout", lambda arg: Adapter("tiva-tiny-nolayout", "TiVA (tiny) w/o layout", _tiva(None, "tiva-tiny-nolayout")))
for _name, _label in (("folder", "outputs"), ("difffoley", "Diff-Foley"), ("specvqgan", "SpecVQGAN"), ("im2wav", "IM2WAV"), ("diffsound", "DiffSound-V")):
    ADAPTERS.register(_name, (lambda n, lab: lambda arg: Adapter(n if n != "folder" else Path(arg or "outputs").name,
                                                                  lab if n != "folder" else Path(arg or "outputs").name, _folder(n, arg)))(_name, _label))
ADAPTERS.register("ground-truth", lambda arg: Adapter("ground-truth", "Ground truth", _from_references(lambda refs, k, sr, seed: dummy.ground_truth(refs[k]))))
ADAPTERS.register("shuffled", lambda arg: Adapter("shuffled", "Shuffled GT", _from_references(lambda refs, k, sr, seed: dummy.shuffled(refs, k))))
ADAPTERS.register("shifted", lambda arg: Adapter("shifted", f"GT shifted {float(arg or 0.5):g} s", _from_references(lambda refs, k, sr, seed: dummy.shifted(refs[k], sr, float(arg or 0.5)))))
ADAPTERS.register("noise", lambda arg: Adapter("noise", "Noise", _from_references(lambda refs, k, sr, seed: dummy.noise(refs[k], seed=seed + k))))
ADAPTERS.register("silence", lambda arg: Adapter("silence", "Silence", _from_references(lambda refs, k, sr, seed: dummy.silence(refs[k]))))


def get_adapter(spec: str) -> Adapter:
    """``"name"`` or ``"name=ARG"`` -> an Adapter (unknown names raise with did-you-mean)."""
    name, _, arg = spec.partition("=")
    return ADAPTERS.get(name.strip())(arg.strip() or None)
