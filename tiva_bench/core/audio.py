"""Decoding, mono mix-down, resampling and the scoring window: the one place audio is read.

Decoders: soundfile (libsndfile) for wav/flac/ogg, PyAV (FFmpeg) for everything else, including
the audio track of mp4/mkv/webm/mov videos. Multi-channel audio is mixed to mono by the mean over
channels. Resampling uses soxr at "HQ" quality and fixes the length to
``ceil(n * target / orig)`` samples, exactly as ``librosa.resample(..., res_type="soxr_hq")``
does, so numbers agree with librosa-based reference code.

``AudioClip`` decodes a file once and keeps one resampled copy per sample rate, so every metric
that consumes 16 kHz audio shares the same array.

Damaged files are refused, never scored as something else: a file whose header promises more audio
than it holds (a WAV cut short by an interrupted copy, a truncated FLAC, AIFF, MP3 or video) and a
stream that stops decoding part-way raise ``InputError`` rather than being read as a shorter clip
(which the window would silently pad with zeros). See ``check_complete`` for the tolerances.
"""

from __future__ import annotations

import errno
import os
import struct
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

# Codecs that store every sample: their header's length is exact, so one missing frame is damage.
_LOSSLESS_CODECS = ("flac", "alac", "wavpack", "tta", "ape", "mlp", "truehd", "shorten")
# Lossy codecs: the header's length may differ from the decode by encoder delay and the padding of
# the last codec frame, so a shortfall counts as damage only beyond max(this, 3 codec frames).
LOSSY_TOLERANCE_S = 0.1


@dataclass(frozen=True)
class PromisedLength:
    """What a container's header says its first audio stream holds.

    ``seconds``: the promised duration; ``tolerance_s``: how much shorter a complete decode may
    be (half a sample for lossless codecs, so one missing frame is damage; ``max(0.1 s, 3 codec
    frames)`` for lossy ones);
    ``source``: where the number comes from (for the message).
    """

    seconds: float
    tolerance_s: float
    source: str


def _matroska_duration(tag: str) -> float | None:
    """``"00:00:08.064000000"`` (a Matroska per-track DURATION tag) -> seconds."""
    try:
        h, m, sec = tag.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _has_mp3_length_header(path: Path) -> bool:
    """True when an MP3 carries a Xing/Info/VBRI header (an exact frame count). Without one
    FFmpeg estimates the length from the bit rate, which is no promise at all for VBR files."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        if head[:3] == b"ID3" and len(head) == 10:  # skip an ID3v2 tag (its text could hold "Info")
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            fh.seek(10 + size + (10 if head[5] & 0x10 else 0))
        else:
            fh.seek(0)
        first_frame = fh.read(4096)  # the length header sits in the first frame
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def promised_length(container, path: Path) -> PromisedLength | None:
    """The length the header of an open PyAV ``container`` promises for its first audio stream,
    or ``None`` when it promises nothing usable (no duration, or an MP3 length estimated from its
    bit rate)."""
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    rate = stream.rate or stream.codec_context.sample_rate
    if not rate:
        return None
    if container.format.name == "mp3" and not _has_mp3_length_header(path):
        return None
    seconds, source = None, ""
    if stream.duration and stream.time_base:
        seconds, source = float(stream.duration * stream.time_base), "the stream header"
    elif "DURATION" in stream.metadata:
        seconds, source = _matroska_duration(stream.metadata["DURATION"]), "the track's DURATION tag"
    elif not container.streams.video and container.duration:
        seconds, source = container.duration / 1_000_000, "the container header"
    if not seconds or seconds <= 0:
        return None
    codec = stream.codec_context.name or ""
    if codec.startswith("pcm_") or codec in _LOSSLESS_CODECS:
        tolerance = 0.5 / rate
    else:
        tolerance = max(LOSSY_TOLERANCE_S, 3 * (stream.codec_context.frame_size or 1024) / rate)
    return PromisedLength(seconds, tolerance, source)


def check_complete(path: Path, decoded_s: float, promised: PromisedLength | None, decode_error: str = "") -> None:
    """Raise ``InputError`` when a decode of ``decoded_s`` seconds is shorter than the header
    promised (beyond ``promised.tolerance_s``), or when decoding stopped with ``decode_error`` and
    either nothing was promised or the promise was not met."""
    short = promised is not None and decoded_s < promised.seconds - promised.tolerance_s
    if short:
        raise InputError(
            path,
            f"damaged: {promised.source} promises {promised.seconds:.3f} s of audio but the file holds {decoded_s:.3f} s (cut short?)",
            "copy or regenerate it; read as it is, it would pass for a shorter, zero-padded clip",
        )
    if decode_error and promised is None:
        raise InputError(
            path,
            f"damaged: decoding stopped after {decoded_s:.3f} s ({decode_error}) and the header gives no length to check against",
            "re-encode or regenerate the file",
        )


def is_media_file(path: str | Path) -> bool:
    """True when the extension is one tiva-bench decodes (case-insensitive)."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


_MISSING_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)  # what Path.exists() reads as "no file"
_WAV_PCM_TAGS = (1, 3, 6, 7, 0xFFFE)  # PCM, IEEE float, A-law, mu-law, extensible: bytes = frames x block
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # placeholders of writers that stream and never seek back


@dataclass(frozen=True)
class WavLayout:
    """What a RIFF/RIFX/RF64 WAV header says, up to the start of its data chunk.

    ``order``: ``"<"`` (RIFF, RF64) or ``">"`` (RIFX); ``tag``: the ``fmt `` format tag (``None``
    without a ``fmt `` chunk); ``data_offset``: where the sample bytes start; ``data_size``: the
    data chunk's size field as written (RF64: the ``ds64`` size where the field is 0xFFFFFFFF);
    ``fact_frames``: the ``fact`` chunk's frame count, if any.
    """

    riff: bytes
    order: str
    tag: int | None
    channels: int
    rate: int
    block: int
    bits: int
    data_offset: int
    data_size: int
    fact_frames: int | None


def _wav_layout(fh) -> WavLayout | None:
    """Read the header of an open WAV file (binary, at its start): its layout, or ``None`` when it
    is not a RIFF/RIFX/RF64 WAVE file or has no data chunk. Leaves ``fh`` anywhere."""
    head = fh.read(12)
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64"):
        return None
    order = ">" if head[:4] == b"RIFX" else "<"
    rate = block = tag = channels = bits = 0
    tag = None
    ds64_data = fact_frames = None
    while True:
        header = fh.read(8)
        if len(header) < 8:
            return None
        chunk, size = header[:4], struct.unpack(order + "I", header[4:])[0]
        if chunk == b"data":
            if head[:4] == b"RF64" and size == 0xFFFFFFFF and ds64_data:
                size = ds64_data
            return WavLayout(head[:4], order, tag, channels, rate, block, bits, fh.tell(), size, fact_frames)
        body = fh.read(min(size, 64)) if chunk in (b"fmt ", b"ds64", b"fact") else b""
        if chunk == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, block, bits = struct.unpack(order + "HHIIHH", body[:16])
        elif chunk == b"fmt " and len(body) >= 14:
            tag, channels, rate, _, block = struct.unpack(order + "HHIIH", body[:14])
        elif chunk == b"ds64" and len(body) >= 16:
            ds64_data = struct.unpack(order + "Q", body[8:16])[0]
        elif chunk == b"fact" and len(body) >= 4:
            fact_frames = struct.unpack(order + "I", body[:4])[0]
        fh.seek(size + (size & 1) - len(body), os.SEEK_CUR)


def _promised_by_layout(layout: WavLayout | None) -> PromisedLength | None:
    """The length a WAV header promises (see ``wav_promised_length``)."""
    if layout is None or not layout.rate or not layout.block:
        return None
    if layout.tag in _WAV_PCM_TAGS:
        if layout.data_size in _WAV_UNKNOWN_SIZES:
            return None
        frames = layout.data_size // layout.block
    elif layout.fact_frames:
        frames = layout.fact_frames
    else:
        return None
    return PromisedLength(frames / layout.rate, 0.5 / layout.rate, "the WAV header")


def wav_promised_length(path: Path) -> PromisedLength | None:
    """What a RIFF/RIFX/RF64 WAV header promises: its data chunk's size in frames (or, for
    compressed formats, the ``fact`` chunk's frame count). ``None`` when the file is not such a WAV
    or the sizes are streaming placeholders (0 or 0xFFFFFFFF with no ``ds64`` chunk).

    FFmpeg cannot be asked: for plain PCM it reports the length of the data the file holds.
    """
    with open(path, "rb") as fh:
        return _promised_by_layout(_wav_layout(fh))


def _pcm16_frames(layout: WavLayout, file_size: int) -> int | None:
    """The frame count of a plain 16-bit PCM RIFF WAV whose data chunk is whole, from its header;
    ``None`` for anything else (other encodings, RIFX/RF64, streaming placeholders, a data chunk
    cut short): those go through libsndfile, which reads them and reports damage."""
    plain = (layout.riff == b"RIFF" and layout.tag == 1 and layout.bits == 16 and layout.channels > 0
             and layout.block == 2 * layout.channels and layout.rate > 0)
    if not plain or layout.data_size in _WAV_UNKNOWN_SIZES or layout.data_offset + layout.data_size > file_size:
        return None
    return layout.data_size // layout.block


def _read_pcm16_raw(fh, layout: WavLayout, file_size: int) -> tuple[np.ndarray, int] | None:
    """The 16-bit integers of a plain 16-bit PCM RIFF WAV whose data chunk is whole, ``(n,
    channels)`` little-endian int16 (read-only, over the bytes read), or ``None`` for anything else
    (see ``_pcm16_frames``)."""
    frames = _pcm16_frames(layout, file_size)
    if frames is None:
        return None
    fh.seek(layout.data_offset)
    raw = fh.read(frames * layout.block)
    if len(raw) != frames * layout.block:
        return None
    return np.frombuffer(raw, dtype="<i2").reshape(frames, layout.channels), int(layout.rate)


def _read_pcm16_wav(fh, layout: WavLayout, file_size: int) -> tuple[np.ndarray, int] | None:
    """Samples of a plain 16-bit PCM RIFF WAV whose data chunk is whole, as ``(channels, n)``
    float32 ``x / 32768`` (libsndfile's values exactly, in its ``(n, channels)`` memory order), or
    ``None`` for anything else (see ``_read_pcm16_raw``)."""
    read = _read_pcm16_raw(fh, layout, file_size)
    if read is None:
        return None
    ints, rate = read
    # one pass, exact: a 16-bit integer times 2**-15 is a float32
    return np.multiply(ints, np.float32(PCM16_SCALE), dtype=np.float32).T, rate


PCM16_SCALE = 2.0 ** -15  # a 16-bit PCM sample's value per integer step (1 / 32768)


def read_pcm16_mono(path: str | Path, rate: int | None = None, min_frames: int = 1) -> tuple[np.ndarray, int] | None:
    """``(int16 samples (n,), sample rate)`` of a plain mono 16-bit PCM WAV file (``.wav``) whose
    data chunk is whole and holds at least ``min_frames`` samples, at ``rate`` Hz where given;
    ``None`` for anything else, decided from the header before any sample is read, and for files
    that cannot be opened (then ``decode_audio`` reads the file and names its problem). The
    samples are ``decode_audio``'s times 32768, exactly; fast paths use them without converting
    them to float."""
    if Path(path).suffix.lower() != ".wav":
        return None
    try:
        with open(path, "rb") as fh:
            layout = _wav_layout(fh)
            if layout is None or layout.channels != 1 or (rate is not None and layout.rate != rate):
                return None
            file_size = os.fstat(fh.fileno()).st_size
            frames = _pcm16_frames(layout, file_size)
            if frames is None or frames < max(1, min_frames):
                return None
            read = _read_pcm16_raw(fh, layout, file_size)
    except OSError:
        return None
    if read is None:
        return None
    return read[0][:, 0].astype(np.int16, copy=False), read[1]  # a copy only where int16 is not little-endian


def _promised_by_ffmpeg(path: Path) -> PromisedLength | None:
    """The header's promise read with FFmpeg (libsndfile clamps a truncated WAV's length to what
    the file holds, so it cannot tell); ``None`` when FFmpeg cannot parse the header."""
    import av

    try:
        with av.open(str(path)) as container:
            return promised_length(container, path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


def _decode_soundfile(path: Path, promised: PromisedLength | None = None) -> tuple[np.ndarray, int]:
    """``promised``: the header's length where the caller read it (WAV); else FFmpeg reads it."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    check_complete(path, data.shape[0] / sr, promised or _promised_by_ffmpeg(path))
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


def _decode_pyav(path: Path, promised: PromisedLength | None = None) -> tuple[np.ndarray, int]:
    """``promised``: the header's length where the caller read it (WAV); else FFmpeg's."""
    import av

    container = open_media(path)
    with container:
        if not container.streams.audio:
            kinds = "video only" if container.streams.video else "no streams"
            raise InputError(path, f"no audio stream ({kinds})", "use a file with an audio track")
        stream = container.streams.audio[0]
        promised = promised or promised_length(container, path)
        chunks: list[np.ndarray] = []
        rate = stream.rate or stream.codec_context.sample_rate
        decode_error = ""
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
            decode_error = type(exc).__name__  # a damaged tail: accepted only if the promise is met
    if not chunks or not rate:
        raise InputError(path, "audio stream holds no samples", "use a file with a non-empty audio track")
    check_complete(path, sum(c.shape[1] for c in chunks) / rate, promised, decode_error)
    channels = max(c.shape[0] for c in chunks)
    chunks = [c if c.shape[0] == channels else np.repeat(c[:1], channels, axis=0) for c in chunks]
    return np.concatenate(chunks, axis=1), int(rate)


def decode_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to mono float32 at its native sample rate.

    Returns ``(samples, sample_rate)`` with ``samples`` of shape ``(n,)``. Raises ``InputError``
    (with the file's name and a fix) for unreadable, empty or non-finite audio.
    """
    path = path if isinstance(path, Path) else Path(path)
    try:
        size = os.stat(path).st_size  # one system call for both checks
    except OSError as exc:
        if exc.errno not in _MISSING_ERRNOS:  # as Path.exists(): other errors propagate
            raise
        raise InputError(path, "file does not exist") from None
    if size == 0:
        raise InputError(path, "empty file (0 bytes)", "regenerate or remove it")
    suffix = path.suffix.lower()
    promised, decoded = None, None
    if suffix == ".wav":
        with open(path, "rb") as fh:
            layout = _wav_layout(fh)
            promised = _promised_by_layout(layout)
            if layout is not None:
                decoded = _read_pcm16_wav(fh, layout, os.fstat(fh.fileno()).st_size)
    if decoded is not None:  # plain 16-bit PCM, whole: read directly (5x faster than libsndfile)
        data, sr = decoded
    elif suffix in _SOUNDFILE_EXTENSIONS:
        try:
            data, sr = _decode_soundfile(path, promised)
        except InputError:
            raise
        except Exception:  # libsndfile refuses some valid files (e.g. odd WAV headers): let FFmpeg try
            data, sr = _decode_pyav(path, promised)
    else:
        data, sr = _decode_pyav(path)
    if data.shape[-1] == 0:
        raise InputError(path, "audio has 0 samples", "regenerate or remove it")
    mono = data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0]
    if decoded is None and not np.all(np.isfinite(mono)):  # scaled 16-bit integers are finite
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
        return cls(path if isinstance(path, Path) else Path(path), samples, sr, window_s)

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
        return window.size == 0 or max(float(window.max()), -float(window.min())) <= SILENCE_PEAK

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
