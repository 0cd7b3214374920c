"""Find media files below two folders and pair generated with reference files by name.

Keys: the file stem (default) or the relative path without extension, after the configured
mapping (strip a suffix/prefix from generated names, or take a regex group). Problems never stop
the pairing; they come back as ``Skipped`` entries (one line each) and warnings:

* a generated file with no reference, or a reference with no generated file;
* two files of the same kind mapping to one key (ambiguous: both skipped);
* an audio file and a video file with the same key (the audio file is used; a warning says so);
* files that are not media (``.txt``, ``.json``, ...): listed as ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tiva_bench.core.audio import AUDIO_EXTENSIONS, MEDIA_EXTENSIONS
from tiva_bench.config import PairingConfig
from tiva_bench.core.errors import ConfigError, InputError


@dataclass(frozen=True)
class Pair:
    """One clip to score: its key and the two files."""

    key: str
    gen: Path
    ref: Path


@dataclass(frozen=True)
class Skipped:
    """A clip (or file) that was not scored, with a one-line reason."""

    clip: str
    reason: str
    path: str = ""


@dataclass
class Pairing:
    pairs: list[Pair] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _compile(pattern: str | None, option: str) -> re.Pattern | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None


def _key_for(path: Path, root: Path, cfg: PairingConfig, pattern: re.Pattern | None, is_gen: bool) -> str | None:
    rel = path.relative_to(root).with_suffix("")
    name = rel.as_posix() if cfg.by == "relpath" else rel.name
    if is_gen:
        if cfg.strip_suffix and name.endswith(cfg.strip_suffix):
            name = name[: -len(cfg.strip_suffix)]
        if cfg.strip_prefix and name.startswith(cfg.strip_prefix):
            name = name[len(cfg.strip_prefix):]
    if pattern is not None:
        match = pattern.search(name)
        if match is None:
            return None
        if "key" in pattern.groupindex:
            return match.group("key")
        return match.group(1) if pattern.groups else match.group(0)
    return name


def index_folder(root: str | Path, cfg: PairingConfig, is_gen: bool, result: Pairing) -> tuple[dict[str, Path], set[str]]:
    """``(key -> file, ambiguous keys)`` below ``root``; problems are recorded in ``result``."""
    root = Path(root)
    side = "generated" if is_gen else "reference"
    if not root.is_dir():
        raise InputError(root, f"{side} folder does not exist or is not a folder")
    pattern = _compile(cfg.gen_pattern if is_gen else cfg.ref_pattern, "--gen-pattern" if is_gen else "--ref-pattern")
    by_key: dict[str, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # hidden files and folders (.DS_Store, .cache)
        if path.suffix.lower() not in MEDIA_EXTENSIONS:
            result.ignored.append(str(path))
            continue
        key = _key_for(path, root, cfg, pattern, is_gen)
        if key is None:
            result.skipped.append(Skipped(path.stem, f"{side} name does not match the pattern", str(path)))
            continue
        by_key.setdefault(key, []).append(path)
    index: dict[str, Path] = {}
    ambiguous: set[str] = set()
    preferred: list[tuple[str, Path, list[Path]]] = []
    for key, paths in by_key.items():
        audio = [p for p in paths if p.suffix.lower() in AUDIO_EXTENSIONS]
        candidates = audio if audio else paths
        if len(candidates) > 1:
            names = ", ".join(str(p.relative_to(root)) for p in candidates)
            result.skipped.append(Skipped(key, f"duplicate {side} name: {names} (use --pair-by relpath or a --{'gen' if is_gen else 'ref'}-pattern)", str(candidates[0])))
            ambiguous.add(key)
            continue
        chosen = candidates[0]
        if len(paths) > 1:
            preferred.append((key, chosen, [p for p in paths if p != chosen]))
        index[key] = chosen
    if preferred:
        key, chosen, others = preferred[0]
        example = f"e.g. '{key}': {chosen.relative_to(root)} over {', '.join(str(p.relative_to(root)) for p in others)}"
        result.warnings.append(f"{side}: {len(preferred)} names have both an audio file and a video; the audio files are used ({example})")
    return index, ambiguous


def pair_folders(gen_dir: str | Path, ref_dir: str | Path, cfg: PairingConfig) -> Pairing:
    """Pair every generated file with its reference by key; see the module docstring."""
    result = Pairing()
    gen, gen_ambiguous = index_folder(gen_dir, cfg, True, result)
    ref, ref_ambiguous = index_folder(ref_dir, cfg, False, result)
    for key in sorted(gen):
        if key in ref:
            result.pairs.append(Pair(key, gen[key], ref[key]))
        elif key not in ref_ambiguous:
            result.skipped.append(Skipped(key, f"no reference named '{key}' in {ref_dir}", str(gen[key])))
    for key in sorted(set(ref) - set(gen) - gen_ambiguous):
        result.skipped.append(Skipped(key, f"no generated file named '{key}' in {gen_dir}", str(ref[key])))
    return result
