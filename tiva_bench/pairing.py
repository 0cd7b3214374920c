"""Find media files below two folders and pair generated with reference files by name.

Keys: the file stem (default) or the relative path without extension, after the configured
mapping (strip a suffix/prefix from generated names, or take a regex group). Problems never stop
the pairing. Every entry found below either folder ends up in exactly one place: a scored pair,
``skipped`` (a clip that cannot be scored, with a one-line reason) or ``ignored`` (an entry that is
not a clip, with a reason):

* a generated file with no reference, or a reference with no generated file: skipped;
* two files of the same kind mapping to one key (ambiguous: skipped, both named);
* an audio file and a video file with the same key (the audio file is used; a warning says so);
* a media-named entry that cannot be read as a file -- a dangling symbolic link, a link loop, a
  folder named ``x.wav``, a FIFO or device -- skips its clip with that reason (unless a readable
  file provides the same key; the entry is then ignored with the reason);
* files that are not media (``.txt``, ``.json``, ...): ignored;
* hidden entries (names starting with ``.``, e.g. ``.DS_Store``, ``._clip.wav``, ``.cache/``):
  ignored, and hidden folders are not searched, unless ``pairing.include_hidden`` is true;
* symbolic links to folders are followed; a link back to a folder above it (a loop) or to a
  folder already searched through another path is ignored with the reason, so no file is
  counted twice.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tiva_bench.core.audio import AUDIO_EXTENSIONS, MEDIA_EXTENSIONS
from tiva_bench.config import PairingConfig
from tiva_bench.core.errors import ConfigError, InputError

REASON_NOT_MEDIA = "not a media file"
REASON_HIDDEN = "hidden (name starts with '.'); --set pairing.include_hidden=true includes it"


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
    """The outcome of pairing. ``ignored``: ``{"path": ..., "reason": ...}`` per entry that is not
    a clip (JSON-ready, as written to ``results.json``)."""

    pairs: list[Pair] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ignored_kinds: list[str] = field(default_factory=list, repr=False)  # a short label per ignored entry

    def ignore(self, path: str | Path, reason: str, kind: str) -> None:
        self.ignored.append({"path": str(path), "reason": reason})
        self.ignored_kinds.append(kind)


@dataclass(frozen=True)
class _Problem:
    """A media-named entry that is not a readable file."""

    path: Path
    reason: str
    kind: str = "folders with media names"


def _compile(pattern: str | None, option: str) -> re.Pattern | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None


def root_prefix(root: Path) -> str:
    """What every path found below ``root`` starts with (``"gen/"`` for ``gen``); ``""`` for
    ``.`` and ``/``, whose children do not carry it (``_relative_stem`` then uses pathlib)."""
    return str(root) + "/" if str(root) not in (".", "/") else ""


def _relative_stem(path: Path, root: Path, root_prefix: str) -> str:
    """``path`` relative to ``root`` without its last suffix, "/"-separated (``Path.relative_to`` +
    ``with_suffix("")``; by string where ``path`` starts with ``root_prefix``, 10x faster)."""
    text = str(path)
    if root_prefix and text.startswith(root_prefix) and os.sep == "/":
        rel = text[len(root_prefix):]
        start = rel.rfind("/") + 1
        dot = rel.rfind(".") - start  # pathlib's rule: a suffix starts after the name's first character and is not its last
        if 0 < dot < len(rel) - start - 1:
            rel = rel[:start + dot]
        return rel
    return path.relative_to(root).with_suffix("").as_posix()


def _key_for(path: Path, root: Path, cfg: PairingConfig, pattern: re.Pattern | None, is_gen: bool, root_prefix: str = "") -> str | None:
    rel = _relative_stem(path, root, root_prefix)
    name = rel if cfg.by == "relpath" else rel.rsplit("/", 1)[-1]
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


def _is_media_name(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def walk_folder(root: Path, include_hidden: bool, result: Pairing) -> tuple[list[Path], list[_Problem]]:
    """Every entry below ``root``, in sorted order: ``(readable files, media-named problems)``.

    Links are followed (to files and to folders). Entries that are not candidate clips are
    recorded in ``result.ignored`` with their reason: hidden entries (unless ``include_hidden``),
    folders that cannot be listed, links back to a folder above them (loops), second paths to a
    folder already searched, and non-media entries that cannot be read. Nothing is opened: a FIFO
    named ``x.wav`` is reported, never read.
    """
    files: list[Path] = []
    problems: list[_Problem] = []
    root_stat = os.stat(root)
    root_id = (root_stat.st_dev, root_stat.st_ino)
    searched: dict[tuple[int, int], Path] = {root_id: root}
    # Depth-first, children in name order: (folder, identities of the folders above it and itself).
    # Links to folders wait until every real folder is searched, so a folder reachable both directly
    # and through a link is searched (and keyed, with --pair-by relpath) under its real path.
    stack: list[tuple[Path, frozenset]] = [(root, frozenset({root_id}))]
    links: list[tuple[Path, frozenset, tuple[int, int]]] = []

    def enter(path: Path, above: frozenset, identity: tuple[int, int]) -> tuple[Path, frozenset] | None:
        if identity in above:
            result.ignore(path, f"symbolic link to {searched.get(identity, 'a folder above it')}, a folder above it (a loop); not followed", "link loops")
            return None
        if identity in searched:
            result.ignore(path, f"the same folder as {searched[identity]}, which is searched; not searched twice", "second paths to a folder")
            return None
        searched[identity] = path
        if _is_media_name(path):
            problems.append(_Problem(path, "a folder, not a file (the files inside it are searched)"))
        return path, above | {identity}

    while stack or links:
        if not stack:
            entered = enter(*links.pop(0))
            if entered is not None:
                stack.append(entered)
            continue
        folder, above = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            result.ignore(folder, f"folder cannot be listed ({exc.strerror or type(exc).__name__}); nothing below it was searched", "unreadable folders")
            continue
        subfolders: list[tuple[Path, frozenset]] = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(".") and not include_hidden:
                result.ignore(path, REASON_HIDDEN + ("; the folder was not searched" if entry.is_dir() else ""), "hidden")
                continue
            if entry.is_file(follow_symlinks=False):  # a plain file, known from the listing: no stat call
                files.append(path)
                continue
            try:
                st = os.stat(path)  # follows symbolic links
            except OSError as exc:
                if entry.is_symlink():
                    if exc.errno == errno.ELOOP:
                        reason, kind = "symbolic-link loop (the link resolves to itself)", "link loops"
                    else:
                        reason, kind = f"dangling symbolic link (its target {os.readlink(path)} does not exist)", "dangling links"
                else:
                    reason, kind = f"cannot be read ({exc.strerror or type(exc).__name__})", "unreadable entries"
                if _is_media_name(path):
                    problems.append(_Problem(path, reason, kind))
                else:
                    result.ignore(path, reason, kind)
                continue
            if stat.S_ISDIR(st.st_mode):
                identity = (st.st_dev, st.st_ino)
                if entry.is_symlink():
                    links.append((path, above, identity))
                else:
                    entered = enter(path, above, identity)
                    if entered is not None:
                        subfolders.append(entered)
            elif stat.S_ISREG(st.st_mode):
                files.append(path)
            elif _is_media_name(path):
                problems.append(_Problem(path, f"{_kind_of(st.st_mode)}, not a file; not read", "special files"))
            else:
                result.ignore(path, f"{_kind_of(st.st_mode)}; not read", "special files")
        stack.extend(reversed(subfolders))
    return files, problems


def index_folder(root: str | Path, cfg: PairingConfig, is_gen: bool, result: Pairing) -> tuple[dict[str, Path], dict[str, Skipped]]:
    """``(key -> file, key -> why the key cannot be scored)`` below ``root``.

    The second map holds ambiguous keys and keys whose only entries are unreadable (dangling
    links, loops, folders or FIFOs with media names); the caller turns them into one skipped clip
    each. Non-media and hidden entries go to ``result.ignored``; names that do not match the
    pattern go to ``result.skipped``.
    """
    root = Path(root)
    side = "generated" if is_gen else "reference"
    if not root.is_dir():
        raise InputError(root, f"{side} folder does not exist or is not a folder")
    pattern = _compile(cfg.gen_pattern if is_gen else cfg.ref_pattern, "--gen-pattern" if is_gen else "--ref-pattern")
    n_ignored = len(result.ignored)
    files, problems = walk_folder(root, cfg.include_hidden, result)
    prefix = root_prefix(root)
    by_key: dict[str, list[Path]] = {}
    for path in files:
        if not _is_media_name(path):
            result.ignore(path, REASON_NOT_MEDIA, "non-media")
            continue
        key = _key_for(path, root, cfg, pattern, is_gen, prefix)
        if key is None:
            result.skipped.append(Skipped(path.stem, f"{side} name does not match the pattern", str(path)))
            continue
        by_key.setdefault(key, []).append(path)
    index: dict[str, Path] = {}
    bad: dict[str, Skipped] = {}
    preferred: list[tuple[str, Path, list[Path]]] = []
    for key, paths in by_key.items():
        audio = [p for p in paths if p.suffix.lower() in AUDIO_EXTENSIONS]
        candidates = audio if audio else paths
        if len(candidates) > 1:
            names = ", ".join(str(p.relative_to(root)) for p in candidates)
            bad[key] = Skipped(key, f"duplicate {side} name: {names} (use --pair-by relpath or a --{'gen' if is_gen else 'ref'}-pattern)", str(candidates[0]))
            continue
        chosen = candidates[0]
        if len(paths) > 1:
            preferred.append((key, chosen, [p for p in paths if p != chosen]))
        index[key] = chosen
    for problem in problems:
        key = _key_for(problem.path, root, cfg, pattern, is_gen)
        if key is None or key in by_key:  # not a clip name, or a readable file provides the key
            why = "its name does not match the pattern" if key is None else f"'{key}' comes from another file"
            result.ignore(problem.path, f"{problem.reason}; {why}", problem.kind)
            continue
        reason = f"{side} {problem.path.relative_to(root)}: {problem.reason}"
        if key in bad:
            bad[key] = Skipped(key, f"{bad[key].reason}; {reason}", bad[key].path)
        else:
            bad[key] = Skipped(key, reason, str(problem.path))
    if preferred:
        key, chosen, others = preferred[0]
        example = f"e.g. '{key}': {chosen.relative_to(root)} over {', '.join(str(p.relative_to(root)) for p in others)}"
        result.warnings.append(f"{side}: {len(preferred)} names have both an audio file and a video; the audio files are used ({example})")
    unusual = Counter(k for k in result.ignored_kinds[n_ignored:] if k != "non-media")
    if unusual:
        counts = ", ".join(f"{kind} ({n})" for kind, n in unusual.most_common())
        result.warnings.append(f"{side}: ignored below {root}: {counts}; each is listed with its reason under 'ignored'")
    return index, bad


def pair_folders(gen_dir: str | Path, ref_dir: str | Path, cfg: PairingConfig) -> Pairing:
    """Pair every generated file with its reference by key; see the module docstring.

    Each key seen on either side ends as one pair or one skipped entry (reasons from both sides
    joined with '; ').
    """
    result = Pairing()
    gen, gen_bad = index_folder(gen_dir, cfg, True, result)
    ref, ref_bad = index_folder(ref_dir, cfg, False, result)
    for key in sorted(set(gen) | set(gen_bad) | set(ref) | set(ref_bad)):
        if key in gen and key in ref:
            result.pairs.append(Pair(key, gen[key], ref[key]))
            continue
        reasons: list[str] = []
        paths: list[str] = []
        for bad in (gen_bad, ref_bad):
            if key in bad:
                reasons.append(bad[key].reason)
                paths.append(bad[key].path)
        if key in gen and key not in ref_bad:
            reasons.append(f"no reference named '{key}' in {ref_dir}")
        if key in ref and key not in gen_bad:
            reasons.append(f"no generated file named '{key}' in {gen_dir}")
        paths.extend(str(side[key]) for side in (gen, ref) if key in side)
        result.skipped.append(Skipped(key, "; ".join(reasons), paths[0]))
    return result
