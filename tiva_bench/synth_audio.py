"""Procedural event audio with known onset times (the audio half of the synthetic benchmark).

Each sound class has its own timbre (a pitched partial stack and/or band-limited noise) and
envelope. Version 2 of the benchmark adds two *twin* classes whose coarse spectral envelope (what a
5-band layout sees) is that of an existing class while their pitch differs: ``chime`` has partials
at 740, 1520 and 2100 Hz where the bell has 660, 1320 and 1980 Hz, ``pipe`` 1470 and 2940 Hz where
the whistle has 1760 and 3520 Hz. Each partial stays in its original's layout band but moves by
one to two bands of a 32-band mel spectrogram (the tiny model's latent), so a generator can render
the difference and a classifier can hear it. An event is rendered so that it is exactly zero outside ``[onset, onset + duration)``:
a 5-ms (impacts) or 15-ms (thunder) attack, exponential decay or a flat sustain, and a 20-ms fade
to zero at the end. Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SoundClass:
    """A timbre: partial frequencies (Hz, empty for noise), noise band (Hz), decay time (s),
    attack (s)."""

    name: str
    partials: tuple[float, ...]
    noise_band: tuple[float, float] | None
    decay_s: float
    attack_s: float = 0.005


SOUND_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("bell", (660.0, 1320.0, 1980.0), None, 0.35),
    SoundClass("drum", (90.0, 180.0), (60.0, 400.0), 0.15),
    SoundClass("whistle", (1760.0, 3520.0), None, 0.5),
    SoundClass("crackle", (), (2000.0, 6000.0), 0.08),
    SoundClass("thunder", (), (40.0, 300.0), 0.6, attack_s=0.015),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in SOUND_CLASSES)
# version 2: the five classes (same indices) + twins of bell and whistle (same coarse envelope)
TWIN_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("chime", (740.0, 1520.0, 2100.0), None, 0.35),
    SoundClass("pipe", (1470.0, 2940.0), None, 0.5),
)
SOUND_CLASSES_V2: tuple[SoundClass, ...] = SOUND_CLASSES + TWIN_CLASSES
CLASS_NAMES_V2: tuple[str, ...] = tuple(c.name for c in SOUND_CLASSES_V2)
TWINS: dict[str, str] = {"chime": "bell", "pipe": "whistle"}


def sound_classes(version: int = 1) -> tuple[SoundClass, ...]:
    """The class table of benchmark ``version`` (1 or 2); v2 keeps v1's indices."""
    if version not in (1, 2):
        raise ValueError(f"synthetic benchmark version must be 1 or 2, got {version!r}")
    return SOUND_CLASSES if version == 1 else SOUND_CLASSES_V2


def _band_noise(rng: np.random.Generator, n: int, sr: int, band: tuple[float, float]) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(freqs < band[0]) | (freqs > band[1])] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-12)


def render_event(cls: SoundClass, duration_s: float, rng: np.random.Generator, sr: int = SAMPLE_RATE, sustained: bool = False) -> np.ndarray:
    """One event's waveform (peak <= 1), exactly ``round(duration_s * sr)`` samples long."""
    n = max(1, int(round(duration_s * sr)))
    t = np.arange(n) / sr
    tone = np.zeros(n)
    for k, f in enumerate(cls.partials):
        tone += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (k + 1)
    if cls.noise_band is not None:
        tone += _band_noise(rng, n, sr, cls.noise_band)
    tone /= np.abs(tone).max() + 1e-12
    attack = np.minimum(1.0, t / cls.attack_s)
    release = np.clip((duration_s - t) / 0.02, 0.0, 1.0)
    body = np.ones(n) if sustained else np.exp(-t / cls.decay_s)
    return tone * attack * body * release


def render_clip(events: list[tuple[int, float, float, bool, float]], duration_s: float, seed: int, sr: int = SAMPLE_RATE, noise_floor: float = 1e-5,
                classes: tuple[SoundClass, ...] = SOUND_CLASSES) -> np.ndarray:
    """Mix events ``(class_index, onset_s, duration_s, sustained, gain)`` into float32 in [-1, 1].
    ``class_index`` indexes ``classes`` (``sound_classes(version)``).

    A faint noise floor (``noise_floor`` RMS, -100 dBFS by default, below librosa's 80-dB onset range)
    stands for room tone; where no
    event sounds the clip is that floor and nothing else.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    out = rng.standard_normal(n) * noise_floor
    for cls_idx, onset, dur, sustained, gain in events:
        start = int(round(onset * sr))
        if start >= n:
            continue
        wave = render_event(classes[cls_idx], dur, rng, sr, sustained) * gain
        stop = min(n, start + wave.size)
        out[start:stop] += wave[: stop - start]
    peak = np.abs(out).max()
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def random_events(rng: np.random.Generator, duration_s: float, n_events: tuple[int, int] = (2, 6), cls_idx: int | None = None) -> list[tuple[int, float, float, bool, float]]:
    """Random impacts at least 0.4 s apart (one class per clip by default), for quick audio-only sets."""
    cls = int(rng.integers(4)) if cls_idx is None else cls_idx
    k = int(rng.integers(n_events[0], n_events[1] + 1))
    slots = np.arange(0.2, duration_s - 0.6, 0.4)
    onsets = np.sort(rng.choice(slots, size=min(k, slots.size), replace=False) + rng.uniform(0, 0.1, size=min(k, slots.size)))
    return [(cls, float(o), float(rng.uniform(0.3, 0.6)), False, float(rng.uniform(0.5, 0.9))) for o in onsets]
