"""Decoding, mono mix-down, resampling and the scoring window: the one place audio is read.

Decoders: soundfile (libsndfile) for wav/flac/ogg, PyAV (FFmpeg) for everything else, including
the audio track of mp4/mkv/webm/mov videos. Multi-channel audio is mixed to mono by the mean over
channels. Resampling uses soxr at "HQ" quality and fixes the length to
``ceil(n * target / orig)`` samples, exactly as ``librosa.resample(..., res_type="soxr_hq")``
does, so numbers agree with librosa-based reference code.

``AudioClip`` decodes a file once and keeps one resampled copy per sample rate, so every metric
that consumes 16 kHz audio shares the same array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tiva_bench.core.signal import crop_or_pad, resample
from tiva_bench.core.errors import InputError

__all__ = ["AudioClip", "crop_or_pad", "decode_audio", "is_media_file", "resample"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".wma", ".aiff", ".aif")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
_SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")

# Peak amplitude at or below which a decoded clip counts as digital silence.
SILENCE_PEAK = 1e-8


def is_media_file(path: str | Path) -> bool:
    """True when the extension is one tiva-bench decodes (case-insensitive)."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    return data.T, int(sr)


def _frame_to_planar_float(frame) -> np.ndarray:
    """One PyAV AudioFrame -> float32 array of shape (channels, samples) in [-1, 1]."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    return arr.astype(np.float32, copy=False)


def open_media(path: Path, what: str = "media"):
    """``av.open`` with a one-line ``InputError`` for files FFmpeg cannot parse."""
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot open as {what} ({type(exc).__name__})", f"check the file is a complete {'video' if what == 'video' else 'audio/video'} file") from None


def _decode_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    container = open_media(path)
    with container:
        if not container.streams.audio:
            kinds = "video only" if container.streams.video else "no streams"
            raise InputError(path, f"no audio stream ({kinds})", "use a file with an audio track")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        rate = stream.rate or stream.codec_context.sample_rate
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != rate:
                    if chunks:
                        raise InputError(path, "sample rate changes inside the stream", "re-encode the file at one rate")
                    rate = frame.sample_rate
                chunks.append(_frame_to_planar_float(frame))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise InputError(path, f"audio stream cannot be decoded ({type(exc).__name__})", "re-encode the file") from None
            # A damaged tail: keep what decoded; the caller sees a shorter clip.
    if not chunks or not rate:
        raise InputError(path, "audio stream holds no samples", "use a file with a non-empty audio track")
    channels = max(c.shape[0] for c in chunks)
    chunks = [c if c.shape[0] == channels else np.repeat(c[:1], channels, axis=0) for c in chunks]
    return np.concatenate(chunks, axis=1), int(rate)


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to mono float32 at its native sample rate.

    Returns ``(samples, sample_rate)`` with ``samples`` of shape ``(n,)``. Raises ``InputError``
    (with the file's name and a fix) for unreadable, empty or non-finite audio.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)", "regenerate or remove it")
    suffix = path.suffix.lower()
    if suffix in _SOUNDFILE_EXTENSIONS:
        try:
            data, sr = _decode_soundfile(path)
        except Exception:  # libsndfile refuses some valid files (e.g. odd WAV headers): let FFmpeg try
            data, sr = _decode_pyav(path)
    else:
        data, sr = _decode_pyav(path)
    if data.shape[-1] == 0:
        raise InputError(path, "audio has 0 samples", "regenerate or remove it")
    mono = data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]
    if not np.all(np.isfinite(mono)):
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise InputError(path, f"audio holds {bad} NaN/Inf samples", "fix the generator's output (e.g. clip or nan_to_num) and re-write the file")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


@dataclass
class AudioClip:
    """A decoded clip with lazily computed, cached versions at each sample rate.

    ``native``: mono float32 at ``native_sr``. ``at(sr)`` gives the windowed signal at ``sr``
    (decoded once, resampled once per rate). ``padded_s`` records zero-padding added by the
    window; ``duration_s`` is the decoded length.
    """

    path: Path
    native: np.ndarray
    native_sr: int
    window_s: float = 8.0
    _by_rate: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path, window_s: float = 8.0, min_duration_s: float = 0.0) -> "AudioClip":
        samples, sr = decode_audio(path)
        duration = samples.shape[-1] / sr
        if duration < min_duration_s:
            raise InputError(
                path,
                f"too short: {duration:.3f} s < min_duration_s {min_duration_s:g} s",
                "regenerate a longer clip or lower --set audio.min_duration_s",
            )
        return cls(Path(path), samples, sr, window_s)

    @property
    def duration_s(self) -> float:
        return self.native.shape[-1] / self.native_sr

    @property
    def padded_s(self) -> float:
        if self.window_s <= 0:
            return 0.0
        return max(0.0, self.window_s - self.duration_s)

    @property
    def is_silent(self) -> bool:
        """True when the scored window is digital silence (peak <= 1e-8)."""
        window, _ = crop_or_pad(self.native, self.native_sr, self.window_s)
        return window.size == 0 or float(np.max(np.abs(window))) <= SILENCE_PEAK

    def at(self, sr: int) -> np.ndarray:
        """Mono float32 window at ``sr`` Hz: resample the whole decode, then take the window."""
        if sr not in self._by_rate:
            native = self.native
            if self.window_s > 0:  # long files: resample only the window plus a 1-s margin,
                # far wider than soxr's filter support, so the window's samples are unchanged
                native = native[: int(round((self.window_s + 1.0) * self.native_sr))]
            full = resample(native, self.native_sr, sr)
            self._by_rate[sr], _ = crop_or_pad(full, sr, self.window_s)
        return self._by_rate[sr]
