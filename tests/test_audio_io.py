"""Decoding of every supported container, mono mix-down, resampling, windowing and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tiva_bench.core import audio
from tiva_bench.core.audio import AudioClip, crop_or_pad, decode_audio, resample
from tiva_bench.core.errors import InputError
from tiva_bench.core.media_write import write_audio, write_video
from tests.conftest import SR, clicks


def tone(sr=SR, seconds=1.0, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a", "mp4", "mkv", "webm", "mov"])
def test_every_container_decodes_to_the_same_tone(tmp_path, ext):
    y = tone()
    path = tmp_path / f"x.{ext}"
    if ext in ("mp4", "mkv", "mov", "webm"):
        write_video(path, np.zeros((10, 16, 16, 3), np.uint8), 10, y, SR)
    else:
        write_audio(path, y, SR)
    out, sr = decode_audio(path)
    out16 = resample(out, sr, SR)
    # lossy codecs: compare the spectrum peak and level, not samples
    spec = np.abs(np.fft.rfft(out16[: SR // 2]))
    assert np.argmax(spec) * 2 == pytest.approx(440, abs=4)
    assert np.sqrt(np.mean(out16[1000:7000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_wav_decodes_losslessly_and_stereo_mixes_to_mean(tmp_path):
    left, right = tone(f=300.0), tone(f=500.0) * 0.5
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    out, sr = decode_audio(tmp_path / "s.wav")
    assert sr == SR
    np.testing.assert_array_equal(out, (left + right) / 2)


def test_stereo_aac_mixes_to_mean(tmp_path):
    left, right = tone(f=300.0), np.zeros(SR, np.float32)
    write_video(tmp_path / "s.mp4", None, 10, np.stack([left, right]), SR)
    out, _ = decode_audio(tmp_path / "s.mp4")
    assert np.sqrt(np.mean(out[1000:15000] ** 2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.1)


def test_resample_equals_librosa_soxr_hq():
    librosa = pytest.importorskip("librosa")
    y = clicks((0.3, 0.9), duration_s=1.3)
    for target in (22050, 32000, 44100, 8000):
        np.testing.assert_array_equal(resample(y, SR, target), librosa.resample(y, orig_sr=SR, target_sr=target, res_type="soxr_hq"))


def test_window_crops_and_records_padding():
    y = np.ones(SR * 3, np.float32)
    win, pad = crop_or_pad(y, SR, 8.0)
    assert win.shape == (8 * SR,) and pad == pytest.approx(5.0) and win[3 * SR:].sum() == 0
    win, pad = crop_or_pad(np.ones(SR * 10, np.float32), SR, 8.0)
    assert win.shape == (8 * SR,) and pad == 0.0


def test_audio_clip_resamples_long_files_identically_to_whole_file_resampling(tmp_path):
    y = clicks((1.0, 7.5, 12.0), duration_s=20.0, sr=44100)
    sf.write(tmp_path / "long.wav", y, 44100, subtype="FLOAT")
    clip = AudioClip.load(tmp_path / "long.wav", window_s=8.0)
    whole = resample(y, 44100, SR)[: 8 * SR]
    np.testing.assert_allclose(clip.at(SR), whole, atol=1e-6)
    assert clip.at(SR) is clip.at(SR)  # resampled once per rate


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"), "cannot open"),
        (lambda p: p.write_bytes(b"this is text, not audio" * 100), "cannot open"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), SR, subtype="FLOAT"), "NaN/Inf"),
        (lambda p: sf.write(p, np.array([0.1, np.inf] * 100, np.float32), SR, subtype="FLOAT"), "NaN/Inf"),
    ],
)
def test_bad_files_raise_one_line_input_errors(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(InputError, match=match) as info:
        decode_audio(path)
    assert "bad.wav" in str(info.value) and "\n" not in str(info.value)


def test_video_without_audio_and_missing_and_too_short(tmp_path):
    write_video(tmp_path / "mute.mp4", np.zeros((5, 16, 16, 3), np.uint8), 10, None)
    with pytest.raises(InputError, match="no audio stream"):
        decode_audio(tmp_path / "mute.mp4")
    with pytest.raises(InputError, match="does not exist"):
        decode_audio(tmp_path / "nope.wav")
    sf.write(tmp_path / "short.wav", np.ones(100, np.float32) * 0.1, SR)
    with pytest.raises(InputError, match="too short"):
        AudioClip.load(tmp_path / "short.wav", min_duration_s=0.5)


def _riff_with_chunk_before_data(pcm16_wav: bytes) -> bytes:
    """The same file with an odd-sized ``LIST`` chunk (and its pad byte) between ``fmt `` and ``data``."""
    pos = pcm16_wav.index(b"data")
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\x00"
    out = bytearray(pcm16_wav[:pos] + extra + pcm16_wav[pos:])
    out[4:8] = (len(out) - 8).to_bytes(4, "little")
    return bytes(out)


@pytest.mark.parametrize("channels,frames", [(1, 128000), (2, 44101), (3, 7), (1, 1), (2, 16001)])
def test_pcm16_wav_reads_exactly_as_libsndfile(tmp_path, monkeypatch, channels, frames):
    """Plain 16-bit WAVs are read without libsndfile: the same samples, the same mono mix."""
    rng = np.random.default_rng(channels * 1000 + frames)
    ints = rng.integers(-32768, 32768, size=(frames, channels)).astype(np.int16)
    ints[0] = -32768  # the extremes
    ints[-1] = 32767
    path = tmp_path / "x.wav"
    sf.write(path, ints, 22050, subtype="PCM_16")
    (tmp_path / "list.wav").write_bytes(_riff_with_chunk_before_data(path.read_bytes()))
    ref = sf.read(path, dtype="float32", always_2d=True)[0]  # (frames, channels)
    expected = ref.T.mean(axis=0, dtype=np.float32) if channels > 1 else ref[:, 0]
    assert np.array_equal(ref[:, 0], ints[:, 0] / np.float32(32768))  # what libsndfile gives

    def no_libsndfile(*args):
        raise AssertionError("a plain 16-bit WAV went through libsndfile")

    monkeypatch.setattr(audio, "_decode_soundfile", no_libsndfile)
    for name in ("x.wav", "list.wav"):
        out, sr = decode_audio(tmp_path / name)
        assert sr == 22050 and out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, expected)


def test_pcm16_wav_cut_inside_a_frame_is_damaged(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros((1000, 2), np.int16), SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-1])  # half a sample missing
    with pytest.raises(InputError, match="damaged"):
        decode_audio(path)


def test_pcm16_integers_are_the_decoded_samples_times_32768(tmp_path, monkeypatch):
    """``read_pcm16_mono`` gives a plain mono 16-bit WAV's integers (``decode_audio``'s values times
    2**15, exactly) and declines everything else, which ``decode_audio`` then reads or names."""
    rng = np.random.default_rng(3)
    ints = rng.integers(-32768, 32768, size=20000).astype(np.int16)
    sf.write(tmp_path / "mono.wav", ints, 16000, subtype="PCM_16")
    got, sr = audio.read_pcm16_mono(tmp_path / "mono.wav")
    assert sr == 16000 and got.dtype == np.int16
    np.testing.assert_array_equal(got, ints)
    decoded, _ = decode_audio(tmp_path / "mono.wav")
    np.testing.assert_array_equal(got.astype(np.float32) * np.float32(2.0 ** -15), decoded)
    sf.write(tmp_path / "stereo.wav", np.stack([ints, ints], axis=1), 16000, subtype="PCM_16")
    sf.write(tmp_path / "float.wav", ints / 32768.0, 16000, subtype="FLOAT")
    sf.write(tmp_path / "pcm24.wav", ints / 32768.0, 16000, subtype="PCM_24")
    sf.write(tmp_path / "cut.wav", ints, 16000, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "cut.wav").read_bytes()[:-101])
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.int16), 16000, subtype="PCM_16")
    (tmp_path / "not_wav.wav").write_bytes(b"ID3 not a wav at all")
    for name in ("stereo.wav", "float.wav", "pcm24.wav", "cut.wav", "empty.wav", "not_wav.wav", "missing.wav"):
        assert audio.read_pcm16_mono(tmp_path / name) is None, name
    (tmp_path / "MONO.WAV").write_bytes((tmp_path / "mono.wav").read_bytes())
    (tmp_path / "mono.bin").write_bytes((tmp_path / "mono.wav").read_bytes())
    assert audio.read_pcm16_mono(tmp_path / "MONO.WAV", rate=16000, min_frames=20000)[0].shape == (20000,)
    assert audio.read_pcm16_mono(tmp_path / "mono.bin") is None  # decode_audio reads only .wav names as WAV

    def no_samples(*args):
        raise AssertionError("samples read although the header declines the file")

    monkeypatch.setattr(audio, "_read_pcm16_raw", no_samples)  # a wrong rate or too few frames: decided from the header
    assert audio.read_pcm16_mono(tmp_path / "mono.wav", rate=22050) is None
    assert audio.read_pcm16_mono(tmp_path / "mono.wav", min_frames=20001) is None
