"""The synthetic audio-visual benchmark: procedural clips where what is seen decides what is heard.

Scene: a dark 64x64 frame at 10 fps with one to three objects. Each *sounding* object has a class
that fixes both its look and its timbre:

| class   | look                 | sound                          | event kinds          |
|---------|----------------------|--------------------------------|----------------------|
| bell    | yellow disc          | 660 Hz partials, ~0.35 s decay | impact, sustained    |
| drum    | red square           | 90 Hz + low noise, short thud  | impact               |
| whistle | cyan triangle        | 1.76 kHz partials              | impact, sustained    |
| crackle | green diamond        | 2-6 kHz noise, very short      | impact, sustained    |
| thunder | white lightning bolt | 40-300 Hz rumble               | lagged (see below)   |

Visible events: an *impact* lights the object up (bright, 1.4x larger) on the frame of its visual
onset and the next; a *sustained* sound keeps the object lit from its visible start to its
visible end, and the sound spans exactly that interval; *thunder* flashes the bolt and the whole
frame on the visual onset, and its sound starts ``THUNDER_LAG_S`` = 0.6 s later. A grey
*distractor* (a ring) may light up too, silently. A second sounding source (quieter, 1-2 events)
appears in some clips (gain 0.45-0.6 against 0.6-0.9). Every clip keeps at least one silent stretch of ``MIN_SILENCE_S`` with no
sound but the -100 dBFS floor. Sound onsets are at least 0.3 s apart, visual onsets fall on frame
times (multiples of 0.1 s), and every sound ends (exactly zero) at its ``sound_offset_s``.

Version 2 (``version=2``; version 1 stays the default and is unchanged, clip for clip) adds two
*twin* classes that a coarse layout cannot tell from their originals, so that the layout and the
semantics each carry something the other cannot:

| class   | look                  | sound                                              | twin of |
|---------|-----------------------|----------------------------------------------------|---------|
| chime   | orange cross          | partials at 740, 1520, 2100 Hz (bell: 660, 1320, 1980) | bell    |
| pipe    | purple ellipse        | partials at 1470, 2940 Hz (whistle: 1760, 3520)        | whistle |

Their band energies over time (the 5-band mel layout) match the original's; only the fine
structure (the pitch of the partials, one to two bands of a 32-band mel apart) differs, and only the look shows which one
sounds. The version is recorded in every clip's metadata and in ``synthetic.json``.

Files per clip: ``<split>/<clip>.mp4`` (H.264 video + AAC audio), ``<split>/<clip>.wav`` (16-bit
PCM, 16 kHz) and ``<split>/<clip>.json`` with the class, the events, the objects and the seed.
Deterministic: clip ``i`` of split ``s`` uses the seed derived from ``(seed, s, i)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tiva_bench.synth_audio import CLASS_NAMES, CLASS_NAMES_V2, SAMPLE_RATE, render_clip, sound_classes
from tiva_bench.core.errors import ConfigError, TivaBenchError
from tiva_bench.core.media_write import write_video
from tiva_bench.core.pool import TaskFailure, supervised_map

FPS = 10
FRAME_SIZE = 64
DURATION_S = 10.24
THUNDER_LAG_S = 0.6
MIN_SILENCE_S = 1.0
MIN_ONSET_GAP_S = 0.3
THUNDER = CLASS_NAMES.index("thunder")
SUSTAINABLE = {CLASS_NAMES_V2.index(n) for n in ("bell", "whistle", "crackle", "chime", "pipe")}
VERSIONS = (1, 2)
COLOURS = {
    "bell": (255, 215, 40),
    "drum": (235, 50, 40),
    "whistle": (40, 220, 235),
    "crackle": (60, 220, 80),
    "thunder": (250, 250, 255),
    "chime": (255, 140, 0),
    "pipe": (170, 90, 255),
    "distractor": (160, 160, 160),
}
BACKGROUND = (18, 18, 28)
IDLE_BRIGHTNESS = 0.35
SPLITS = ("train", "val", "test")


@dataclass
class Event:
    """One visible cue and the sound it causes (``sound_*`` is None for silent distractor cues)."""

    cls: str
    kind: str  # impact | sustained | lagged | silent
    visual_onset_s: float
    visual_offset_s: float
    sound_onset_s: float | None
    sound_offset_s: float | None
    gain: float = 0.0
    source: int = 0

    def to_json(self) -> dict:
        return {"class": self.cls, "kind": self.kind, "visual_onset_s": self.visual_onset_s, "visual_offset_s": self.visual_offset_s,
                "sound_onset_s": self.sound_onset_s, "sound_offset_s": self.sound_offset_s, "source": self.source}


@dataclass
class SceneObject:
    cls: str  # a sound class or "distractor"
    x: int
    y: int
    size: int
    sounding: bool


@dataclass
class Scene:
    clip: str
    seed: int
    cls: str
    duration_s: float
    objects: list[SceneObject] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    version: int = 1

    def metadata(self) -> dict:
        return {
            "class": self.cls,
            "events": [e.to_json() for e in self.events if e.sound_onset_s is not None],
            "silent_cues": [e.to_json() for e in self.events if e.sound_onset_s is None],
            "objects": [asdict(o) for o in self.objects],
            "seed": self.seed,
            "duration_s": self.duration_s,
            "fps": FPS,
            "sample_rate": SAMPLE_RATE,
            "thunder_lag_s": THUNDER_LAG_S,
            "version": self.version,
        }


def clip_seed(seed: int, split: str, index: int) -> int:
    """A stable 63-bit seed for clip ``index`` of ``split`` (independent of Python's hash salt)."""
    digest = hashlib.sha256(f"tiva-bench-synthetic/{seed}/{split}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _frame_time(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A random frame time (multiple of 1/FPS) in [lo, hi]."""
    k = int(rng.integers(int(np.ceil(lo * FPS)), int(np.floor(hi * FPS)) + 1))
    return round(k / FPS, 6)


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and a[1] > b[0]


def _fits(span: tuple[float, float], sound: tuple[float, float], same_source: list[tuple[float, float]], onsets: list[float], silence: tuple[float, float]) -> bool:
    """Sound onsets 0.3 s apart, nothing seen or heard in the silent stretch, and one source's
    events (visual span + sound) never overlap, so each cue bounds its own sound."""
    if any(abs(sound[0] - o) < MIN_ONSET_GAP_S for o in onsets):
        return False
    if _overlaps(span, silence) or any(_overlaps(span, t) for t in same_source):
        return False
    return True


def class_names(version: int = 1) -> tuple[str, ...]:
    """The sound classes of benchmark ``version``."""
    return tuple(c.name for c in sound_classes(version))


def make_scene(clip: str, seed: int, duration_s: float = DURATION_S, version: int = 1) -> Scene:
    """Sample one scene (objects and events) from ``seed``; see the module docstring."""
    names = class_names(version)
    rng = np.random.default_rng(seed)
    primary = int(rng.integers(len(names)))
    scene = Scene(clip=clip, seed=seed, cls=names[primary], duration_s=duration_s, version=version)
    sources = [primary]
    if rng.random() < 0.3:
        others = [c for c in range(len(names)) if c != primary and c != THUNDER]
        sources.append(int(rng.choice(others)))
    # positions: objects in separate thirds of the frame
    xs = rng.permutation([12, 32, 52])
    for k, c in enumerate(sources):
        scene.objects.append(SceneObject(names[c], int(xs[k]), int(rng.integers(16, 48)), 16, True))
    has_distractor = rng.random() < 0.5
    if has_distractor:
        scene.objects.append(SceneObject("distractor", int(xs[len(sources)]), int(rng.integers(16, 48)), 14, False))
    # a silent stretch no sound may overlap
    last = duration_s - 0.6
    s0 = float(rng.uniform(0.0, last - MIN_SILENCE_S))
    silence = (s0, s0 + MIN_SILENCE_S)
    onsets: list[float] = []
    for k, c in enumerate(sources):
        taken: list[tuple[float, float]] = []
        n_events = int(rng.integers(2, 6)) if k == 0 else int(rng.integers(1, 3))
        gain = float(rng.uniform(0.6, 0.9)) if k == 0 else float(rng.uniform(0.45, 0.6))
        for _ in range(n_events):
            for _attempt in range(50):
                if c == THUNDER:
                    v_on = _frame_time(rng, 0.1, last - THUNDER_LAG_S - 0.5)
                    s_on, dur, kind, v_off = v_on + THUNDER_LAG_S, float(rng.uniform(0.6, 1.0)), "lagged", v_on + 2 / FPS
                elif c in SUSTAINABLE and rng.random() < 0.35:
                    v_on = _frame_time(rng, 0.1, last - 1.6)
                    dur = round(float(rng.integers(8, 16)) / FPS, 6)
                    s_on, kind, v_off = v_on, "sustained", v_on + dur
                else:
                    v_on = _frame_time(rng, 0.1, last - 0.5)
                    s_on, dur, kind, v_off = v_on, float(rng.uniform(0.3, 0.5)), "impact", v_on + 2 / FPS
                s_on = round(s_on, 6)
                s_off = round(min(s_on + dur, duration_s), 6)
                span = (min(v_on, s_on), max(v_off, s_off))
                if _fits(span, (s_on, s_off), taken, onsets, silence):
                    onsets.append(s_on)
                    taken.append(span)
                    scene.events.append(Event(names[c], kind, round(v_on, 6), round(v_off, 6), s_on, s_off, gain, k))
                    break
    if has_distractor:
        for _ in range(int(rng.integers(1, 4))):
            v_on = _frame_time(rng, 0.1, last)
            scene.events.append(Event("distractor", "silent", v_on, round(v_on + 2 / FPS, 6), None, None, 0.0, len(sources)))
    scene.events.sort(key=lambda e: (e.visual_onset_s, e.source))
    return scene


def render_audio(scene: Scene) -> np.ndarray:
    """The scene's sound at 16 kHz, float32, ``round(duration_s * 16000)`` samples."""
    names = class_names(scene.version)
    events = [(names.index(e.cls), e.sound_onset_s, e.sound_offset_s - e.sound_onset_s, e.kind == "sustained", e.gain)
              for e in scene.events if e.sound_onset_s is not None]
    return render_clip(events, scene.duration_s, seed=scene.seed, classes=sound_classes(scene.version))


def _shape_mask(kind: str, cx: float, cy: float, size: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    dx, dy, r = xx - cx, yy - cy, size / 2
    if kind == "bell":
        return dx**2 + dy**2 <= r**2
    if kind == "drum":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if kind == "whistle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == "crackle":
        return np.abs(dx) + np.abs(dy) <= r
    if kind == "chime":  # a plus-shaped cross
        return ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r))
    if kind == "pipe":  # a wide ellipse
        return (dx / r) ** 2 + (dy / (r * 0.5)) ** 2 <= 1.0
    if kind == "thunder":  # a zig-zag bolt
        zig = np.abs(dx - r * 0.5 * np.sign(np.sin(dy / max(r, 1) * 3.0))) <= r * 0.3
        return zig & (np.abs(dy) <= r)
    return (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (r * 0.55) ** 2)  # distractor ring


def render_frames(scene: Scene) -> np.ndarray:
    """RGB frames ``(T, 64, 64, 3)`` uint8 at 10 fps, ``T = floor(duration_s * 10)``."""
    n_frames = int(np.floor(scene.duration_s * FPS + 1e-9))
    yy, xx = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE].astype(np.float32)
    frames = np.empty((n_frames, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    for f in range(n_frames):
        t = f / FPS
        img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.float32)
        img[:] = BACKGROUND
        for idx, obj in enumerate(scene.objects):
            lit = any(e.source == idx and e.visual_onset_s - 1e-6 <= t < e.visual_offset_s - 1e-6 for e in scene.events)
            if obj.cls == "thunder" and lit:
                img[:] = np.array(BACKGROUND) + 0.5 * (np.array(COLOURS["thunder"]) - np.array(BACKGROUND))
            size = obj.size * (1.4 if lit else 1.0)
            colour = np.array(COLOURS[obj.cls], np.float32) * (1.0 if lit else IDLE_BRIGHTNESS)
            img[_shape_mask(obj.cls, obj.x, obj.y, size, yy, xx)] = colour
        frames[f] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_clip(scene: Scene, folder: Path) -> dict:
    """Write ``<clip>.mp4``, ``<clip>.wav`` and ``<clip>.json`` into ``folder``; returns the metadata."""
    import soundfile as sf


    folder.mkdir(parents=True, exist_ok=True)
    wav = render_audio(scene)
    write_video(folder / f"{scene.clip}.mp4", render_frames(scene), FPS, wav, SAMPLE_RATE, crf=18)
    sf.write(folder / f"{scene.clip}.wav", wav, SAMPLE_RATE, subtype="PCM_16")
    meta = scene.metadata()
    (folder / f"{scene.clip}.json").write_text(json.dumps(meta, indent=1))
    return meta


def _write_one(args: tuple[str, int, int, str, float, int]) -> str:
    out, seed, index, split, duration_s, version = args
    name = f"{split}_{index:05d}"
    scene = make_scene(name, clip_seed(seed, split, index), duration_s, version)
    write_clip(scene, Path(out) / split)
    return name


def generate(out: str | Path, counts: dict[str, int], seed: int = 0, duration_s: float = DURATION_S, workers: int = 0, progress=None,
             version: int = 1) -> dict[str, int]:
    """Write ``counts[split]`` clips per split under ``out``; returns the counts written.

    Clips already present (all three files) are kept, so an interrupted run resumes. ``version``:
    the benchmark version (1, the default, or 2: see the module docstring); a folder holds one.
    """
    if version not in VERSIONS:
        raise ConfigError(f"synthetic benchmark version must be one of {VERSIONS}, got {version!r}")
    previous = Path(out) / "synthetic.json"
    if previous.exists():
        made = json.loads(previous.read_text()).get("version", 1)
        if made != version:
            raise ConfigError(f"{out} holds version {made} of the synthetic benchmark; write version {version} to another folder")
    out = Path(out)
    jobs = []
    for split, n in counts.items():
        for i in range(n):
            name = f"{split}_{i:05d}"
            if all((out / split / f"{name}.{ext}").exists() for ext in ("mp4", "wav", "json")):
                continue
            jobs.append((str(out), seed, i, split, duration_s, version))
    done = supervised_map(_write_one, jobs, workers=workers if len(jobs) >= 4 else 1)
    if progress is not None:
        done = progress(done, total=len(jobs))
    failed = [(jobs[i], outcome.reason) for i, outcome in done if isinstance(outcome, TaskFailure)]
    if failed:  # procedural clips cannot fail on bad input: a failure is a bug or a full disk
        (job, reason), more = failed[0], len(failed) - 1
        raise TivaBenchError(f"could not write synthetic clip {job[3]}_{job[2]:05d} in {out}: {reason}" + (f" (and {more} more)" if more else ""),
                             "check the free disk space, then rerun the same command (finished clips are kept)")
    (out / "synthetic.json").write_text(json.dumps({"seed": seed, "counts": counts, "duration_s": duration_s, "fps": FPS, "sample_rate": SAMPLE_RATE,
                                                    "classes": list(class_names(version)), "thunder_lag_s": THUNDER_LAG_S, "version": version}, indent=1))
    return counts
