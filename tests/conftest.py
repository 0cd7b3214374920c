"""Shared fixtures: small media files generated on the fly (nothing downloaded or bundled)."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def clicks(times_s, duration_s=8.0, sr=SR, seed=0, amp=0.8, decay_s=0.05):
    """A clip of decaying noise bursts starting at ``times_s`` (a reproducible onset signal)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    out = np.zeros(n, dtype=np.float64)
    for t in times_s:
        start = int(round(t * sr))
        k = min(n - start, int(0.3 * sr))
        if k <= 0:
            continue
        env = np.exp(-np.arange(k) / (decay_s * sr))
        out[start:start + k] += amp * env * rng.standard_normal(k) * 0.5
    return np.clip(out, -1, 1).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def click_clip():
    return clicks


@pytest.fixture
def media_pair_dirs(tmp_path):
    """GEN and REF folders with good, silent, corrupt, empty, NaN, mismatched and non-media files."""
    import soundfile as sf

    from tiva_bench.core.media_write import write_video

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    (gen / "sub").mkdir(parents=True)
    ref.mkdir()
    for i, times in enumerate([(1.0, 3.0, 5.5), (0.5, 2.0), (2.5, 6.0)]):
        sf.write(ref / f"good{i}.wav", clicks(times, seed=i), SR, subtype="FLOAT")
        sf.write((gen / "sub" if i == 2 else gen) / f"good{i}.wav", clicks([t + 0.2 for t in times], seed=10 + i), SR, subtype="FLOAT")
    # reference as a video with AAC audio, generated as wav
    write_video(ref / "video0.mp4", np.zeros((10, 16, 16, 3), np.uint8), 10, clicks((1.0, 4.0), seed=7), SR)
    sf.write(gen / "video0.wav", clicks((1.1, 4.1), seed=8), SR, subtype="FLOAT")
    # silent generated clip
    sf.write(ref / "silent.wav", clicks((2.0,), seed=3), SR, subtype="FLOAT")
    sf.write(gen / "silent.wav", np.zeros(8 * SR, np.float32), SR, subtype="FLOAT")
    # corrupt, empty, NaN
    (gen / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    sf.write(ref / "corrupt.wav", clicks((1.0,)), SR, subtype="FLOAT")
    (gen / "empty.wav").write_bytes(b"")
    sf.write(ref / "empty.wav", clicks((1.0,)), SR, subtype="FLOAT")
    bad = clicks((1.0,))
    bad[100] = np.nan
    sf.write(gen / "nan.wav", bad, SR, subtype="FLOAT")
    sf.write(ref / "nan.wav", clicks((1.0,)), SR, subtype="FLOAT")
    # unmatched on both sides, non-media, video without audio
    sf.write(gen / "orphan_gen.wav", clicks((1.0,)), SR, subtype="FLOAT")
    sf.write(ref / "orphan_ref.wav", clicks((1.0,)), SR, subtype="FLOAT")
    (gen / "notes.txt").write_text("not audio")
    write_video(ref / "mute.mp4", np.zeros((10, 16, 16, 3), np.uint8), 10, None)
    sf.write(gen / "mute.wav", clicks((1.0,)), SR, subtype="FLOAT")
    return gen, ref
