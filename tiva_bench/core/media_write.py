"""Writing audio and video files (PyAV / soundfile), used by the synthetic data and tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_audio(path: str | Path, wav: np.ndarray, sr: int) -> Path:
    """Write mono ``(n,)`` or multi-channel ``(channels, n)`` float audio.

    wav/flac/ogg go through soundfile (wav as 32-bit float, so no quantisation); other
    extensions (mp3, m4a, ...) through PyAV with the container's default codec.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.asarray(wav, dtype=np.float32)
    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        import soundfile as sf

        subtype = {".wav": "FLOAT", ".flac": "PCM_24", ".ogg": "VORBIS"}[path.suffix.lower()]
        sf.write(str(path), wav.T if wav.ndim == 2 else wav, sr, subtype=subtype)
        return path
    return write_video(path, None, 10, wav, sr)


def write_video(path: str | Path, frames: np.ndarray | None, fps: float, wav: np.ndarray | None = None, sr: int = 16000, audio_codec: str | None = None, crf: int = 23) -> Path:
    """Write an mp4/mkv/webm/mov (or an audio-only container when ``frames`` is None).

    frames: ``(T, H, W, 3)`` uint8 RGB (H and W even for H.264) or None.
    wav: mono ``(n,)`` or ``(channels, n)`` float in [-1, 1], or None for a silent-less file with
    no audio stream. The audio codec defaults to AAC (mp4/mov/m4a/mkv), Opus (webm) or MP3 (mp3).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    codec = audio_codec or {".webm": "libopus", ".mp3": "libmp3lame", ".ogg": "libvorbis"}.get(suffix, "aac")
    with av.open(str(path), mode="w") as container:
        vstream = None
        if frames is not None:
            vcodec = "libvpx-vp9" if suffix == ".webm" else "libx264"
            vstream = container.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001))
            vstream.height, vstream.width = int(frames.shape[1]), int(frames.shape[2])
            vstream.pix_fmt = "yuv420p"
            if vcodec == "libx264":
                vstream.options = {"crf": str(crf), "preset": "veryfast"}
        astream = None
        if wav is not None:
            wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
            rate = 48000 if codec == "libopus" else sr
            astream = container.add_stream(codec, rate=rate)
            astream.layout = "mono" if wav.shape[0] == 1 else "stereo"
            if codec == "libopus" and rate != sr:
                from tiva_bench.core.signal import resample

                wav = np.stack([resample(ch, sr, rate) for ch in wav])
        if vstream is not None:
            for image in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype=np.uint8), format="rgb24")
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        if astream is not None:
            fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
            block = 1024
            pts = 0
            for start in range(0, wav.shape[1], block):
                chunk = np.ascontiguousarray(wav[:, start:start + block])
                if fmt.endswith("p"):
                    frame = av.AudioFrame.from_ndarray(chunk.astype(np.float32), format="fltp", layout=astream.layout.name)
                else:
                    frame = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1).astype(np.float32), format="flt", layout=astream.layout.name)
                frame.sample_rate = astream.rate
                frame.pts = pts
                pts += chunk.shape[1]
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path
