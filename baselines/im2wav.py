"""IM2WAV (Sheffer and Adi, ICASSP 2023): two 4-s samples per video, concatenated.

IM2WAV generates ``sample_length`` = 65536 samples (4.096 s) at 16 kHz from the CLIP features of
the first 4.096 s of a video. The TiVA paper scores it on 8-s clips made of two samples, one for
0-4 s and one for 4-8 s of the video, concatenated. Each half is cut (or zero-padded) to its 4.0-s
segment before concatenation, so the second half starts at 4.0 s, where its video segment starts
(unaligned 4.096-s halves would shift every later sound by 96 ms, more than one 80-ms ODF frame).

Naming of the halves, from IM2WAV's own code: its sampler (``models/sample.py``) names every
output after its input video (``<video name>.wav``), and its clips are named after their time
range in milliseconds (``<youtube id>_<start ms>_<end ms>``, e.g. ``0nYltlo90Zc_147000_157000``).
The halves of clip ``KEY`` are therefore ``KEY_0_4000`` and ``KEY_4000_8000`` by default;
set other names with ``halves`` (two templates with ``{key}``) in the systems file
(``im2wav: {options: {halves: ["{key}-a", "{key}-b"]}}``) or
``TIVA_BENCH_IM2WAV_HALVES="{key}-a,{key}-b"``. Whole 8-s files (names that match no half) are
used as they are. The sampler writes two levels, ``l0/`` (the top prior's decode) and ``l1/`` (the
upsampler's, the final output); given a folder holding both, only ``l1/`` is used.

Running its own code: set ``TIVA_BENCH_IM2WAV_CHECKOUT`` (a clone with the pre-trained weights in
``pre_trained/`` as its README downloads them) and optionally ``TIVA_BENCH_IM2WAV_PYTHON``. Every
test video is cut into its two 4-s segments (30 fps, IM2WAV's ``VIDEO_FPS``), then the README's
two steps run from ``<checkout>/run``: ``Data/preprocess/collect_video_CLIP.py -videos_dir ...``
and ``models/sample.py -CLIP_dir ... -models im2wav``. (IM2WAV names a video's features after the part
of its file name before the first dot, so clip names with dots come back under a shorter name and
are skipped with a reason.)
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

from tiva_bench.baselines.base import Adapter, RunContext, SystemInfo
from tiva_bench.baselines.command import CommandSettings, system_adapter
from tiva_bench.baselines.folder import media_files, require_folder
from tiva_bench.core.audio import decode_audio
from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.media_write import write_audio, write_video
from tiva_bench.core.video import decode_frames

HALVES = ("{key}_0_4000", "{key}_4000_8000")
SEGMENT_S = 4.0
VIDEO_FPS = 30
INFO = SystemInfo(method="IM2WAV", group="AutoRegressive", vis_feat="CLIP", guidance="CFG", clip_s=8.0, sample_rate=16000,
                  conventions="two 4.096-s samples per video (0-4 s, 4-8 s), each cut to 4.0 s and concatenated")
DEFAULTS = {
    "cwd": "{checkout}/run",
    "command": [
        ["{python}", "{checkout}/Data/preprocess/collect_video_CLIP.py", "-videos_dir", "{videos}", "-save_dir", "{work}/video_CLIP"],
        ["{python}", "{checkout}/models/sample.py", "-bs", "{n}", "-experiment_name", "video_CLIP", "-save_dir", "{out}",
         "-CLIP_dir", "{work}/video_CLIP", "-models", "im2wav"],
    ],
    "outputs": "**/l1/*.wav",
    "batch_size": 16,
}


def halves_templates(options: dict | None = None) -> tuple[str, str]:
    """The two half-name templates: systems-file option, else environment, else IM2WAV's naming."""
    value = (options or {}).get("halves") or os.environ.get("TIVA_BENCH_IM2WAV_HALVES")
    if not value:
        return HALVES
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value)]
    if len(parts) != 2 or not all("{key}" in p for p in parts) or parts[0] == parts[1]:
        raise ConfigError(f"im2wav halves must be two different name templates with {{key}}, got {value!r}", 'e.g. "{key}_0_4000,{key}_4000_8000"')
    return parts[0], parts[1]


def _template_regex(template: str) -> re.Pattern:
    head, _, tail = template.partition("{key}")
    return re.compile("^" + re.escape(head) + "(?P<key>.+)" + re.escape(tail) + "$")


def concatenate_halves(first: np.ndarray, second: np.ndarray, sr: int, segment_s: float = SEGMENT_S) -> np.ndarray:
    """``first`` and ``second`` each cut or zero-padded to ``segment_s`` seconds, then joined.

    Shapes: ``(n1,)``, ``(n2,)`` -> ``(2 * round(segment_s * sr),)``.
    """
    n = int(round(segment_s * sr))
    fit = [np.pad(x[:n], (0, max(0, n - x.size))) for x in (first, second)]
    return np.concatenate(fit).astype(np.float32)


def join_folder(src: Path, out_dir: Path, templates: tuple[str, str], segment_s: float = SEGMENT_S) -> dict:
    """Write ``KEY.wav`` for every pair of halves below ``src`` (relative folders kept); copy whole
    files; list halves without a partner, or with mismatched rates, as skipped."""
    files = media_files(src)
    levels = {p.parent.name for p in files}
    if {"l0", "l1"} <= levels:  # IM2WAV's own output tree: l1/ holds the upsampled (final) samples
        files = [p for p in files if p.parent.name == "l1"]
    first_re, second_re = _template_regex(templates[0]), _template_regex(templates[1])
    firsts, seconds, whole = {}, {}, []
    for p in files:
        rel = p.relative_to(src)
        m1, m2 = first_re.match(p.stem), second_re.match(p.stem)
        if m1:
            firsts[rel.parent / m1.group("key")] = p
        elif m2:
            seconds[rel.parent / m2.group("key")] = p
        else:
            whole.append(p)
    done, joined, skipped = 0, 0, []
    for key in sorted(set(firsts) | set(seconds)):
        if key not in firsts or key not in seconds:
            missing = templates[0] if key not in firsts else templates[1]
            skipped.append({"clip": key.as_posix(), "reason": f"IM2WAV half {missing.format(key=key.name)} is missing"})
            continue
        try:
            (a, sr_a), (b, sr_b) = decode_audio(firsts[key]), decode_audio(seconds[key])
        except InputError as exc:
            skipped.append({"clip": key.as_posix(), "reason": f"IM2WAV half {exc.reason}: {exc.path}"})
            continue
        if sr_a != sr_b:
            skipped.append({"clip": key.as_posix(), "reason": f"IM2WAV halves have different sample rates ({sr_a} and {sr_b} Hz)"})
            continue
        write_audio(out_dir / key.with_suffix(".wav"), concatenate_halves(a, b, sr_a, segment_s), sr_a)
        done += 1
    joined = done
    for p in whole:
        target = out_dir / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
        done += 1
    return {"generated": done, "skipped": skipped, "halves": list(templates), "segment_s": segment_s,
            "joined": joined, "whole_files": len(whole), "source": str(src.resolve())}


def cut_segments(templates: tuple[str, str], segment_s: float = SEGMENT_S):
    """``prepare`` for IM2WAV's own code: write each video's two segments as silent 30-fps mp4s."""
    def prepare(batch: list, videos: Path) -> None:
        videos.mkdir(parents=True, exist_ok=True)
        for item in batch:
            name = Path(item.key).name
            for k, template in enumerate(templates):
                try:
                    frames = decode_frames(item.path, fps=VIDEO_FPS, start_s=k * segment_s, duration_s=segment_s).frames
                except InputError:
                    continue  # no segment: the system writes nothing and the clip is skipped with a reason
                h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
                write_video(videos / f"{template.format(key=name)}.mp4", frames[:, :h, :w], VIDEO_FPS)
    return prepare


def join_outputs(templates: tuple[str, str]):
    def make(settings: CommandSettings):
        def finalize(raw_out: Path, batch: list, out_dir: Path):
            staging = raw_out.parent / "joined"
            summary = join_folder(raw_out, staging, templates) if media_files(raw_out) else {"skipped": []}
            done, skipped = 0, []
            for item in batch:
                name = Path(item.key).name
                produced = staging / f"{name}.wav"
                if produced.exists():
                    target = out_dir / Path(item.key).with_suffix(".wav")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(produced, target)
                    done += 1
                else:
                    reasons = [s["reason"] for s in summary["skipped"] if Path(s["clip"]).name == name]
                    skipped.append({"clip": item.key, "reason": reasons[0] if reasons else f"IM2WAV wrote no halves for '{name}'"})
            return done, skipped
        return finalize
    return make


def factory(arg: str | None, ctx: RunContext | None = None) -> Adapter:
    ctx = ctx or RunContext()
    options = (ctx.systems.get("im2wav") or {}).get("options") or {}
    templates = halves_templates(options)
    if arg:
        src = require_folder("im2wav", arg)

        def produce(items, out_dir: Path, seed: int, run_ctx: RunContext) -> dict:
            return join_folder(src, out_dir, templates)

        return Adapter("im2wav", "IM2WAV", produce, INFO, kind="precomputed")
    return system_adapter("im2wav", "IM2WAV", INFO, None, ctx, DEFAULTS, prepare=cut_segments(templates), finalize=join_outputs(templates))
