"""Video decoding for the models: frames at a fixed rate (10 fps) from any frame rate, and CLIP
pre-processing without torchvision.

Frame sampling: the frame shown at time ``t_k = start + k / fps`` is the last decoded frame whose
presentation time, counted from the first frame's, is <= ``t_k``, so constant, odd (29.97, 21.5)
and variable frame rates are all sampled by their timestamps, and a stream that starts at a
non-zero timestamp (B-frame delay, trimmed clips) is read from its first frame. Only the selected
frames are converted to RGB; large frames are decoded with FFmpeg's frame threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tiva_bench.core.errors import InputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class VideoFrames:
    """``frames``: uint8 ``(T, H, W, 3)`` RGB; ``times_s``: the sampled times; ``source_fps``:
    the stream's average rate; ``duration_s``: the stream's duration as decoded."""

    frames: np.ndarray
    times_s: np.ndarray
    source_fps: float
    duration_s: float


def decode_frames(path: str | Path, fps: float = 10.0, start_s: float = 0.0, duration_s: float | None = None, max_side: int | None = None, threads: bool | None = None) -> VideoFrames:
    """Frames sampled at ``fps`` from ``start_s`` for ``duration_s`` seconds (to the end if None).

    ``max_side`` downsizes in FFmpeg (bilinear area) before conversion when the longer side
    exceeds it; keep None for exact CLIP pre-processing. ``threads``: FFmpeg frame threads; None
    uses them only for frames of 640x360 or more (below that, thread start-up costs more than it
    saves, and parallel sweeps already use one process per core). Raises ``InputError`` for files with no
    video stream, broken containers and streams that decode no frame.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)", "regenerate or remove it")
    from tiva_bench.core.audio import open_media

    container = open_media(path, "video")
    with container:
        if not container.streams.video:
            raise InputError(path, "no video stream (audio only?)", "use a video file")
        stream = container.streams.video[0]
        if threads is None:
            threads = (stream.codec_context.width or 0) * (stream.codec_context.height or 0) >= 640 * 360
        stream.thread_type = "AUTO" if threads else "NONE"
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        limit = float("inf") if duration_s is None else start_s + duration_s
        picked: list[np.ndarray] = []
        held = None  # (frame, rgb or None): the latest frame at or before the next sampling time
        last_time = None
        first_time = None  # times are taken relative to the first frame (streams may start late)

        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()  # one swscale context for the whole clip (about 3x faster)

        def rgb(entry):
            if entry[1] is None:
                frame = entry[0]
                size = {}
                if max_side and max(frame.width, frame.height) > max_side:
                    scale = max_side / max(frame.width, frame.height)
                    size = {"width": max(2, int(round(frame.width * scale / 2)) * 2), "height": max(2, int(round(frame.height * scale / 2)) * 2)}
                entry[1] = reformatter.reformat(frame, format="rgb24", **size).to_ndarray()
            return entry[1]

        def next_time():
            return start_s + len(picked) / fps

        try:
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                if first_time is None:
                    first_time = t
                t -= first_time
                last_time = t
                current = [frame, None]
                # every sampling time before this frame shows the previous frame (or this one,
                # when the stream starts after the sampling time)
                while next_time() < t - 1e-9 and next_time() < limit - 1e-9:
                    picked.append(rgb(held if held is not None else current))
                held = current
                if next_time() >= limit - 1e-9:
                    break
        except av.error.FFmpegError:
            if held is None:
                raise InputError(path, "video stream cannot be decoded", "re-encode the file") from None
        if held is None:
            raise InputError(path, "video stream holds no frames", "use a non-empty video")
        stream_end = last_time + (1.0 / rate if rate else 0.0)
        end = min(limit, stream_end)
        while next_time() < end - 1e-9:  # up to the end, the last frame stays on screen
            picked.append(rgb(held))
    if not picked:
        raise InputError(path, f"no frame at or after {start_s:g} s", "check start_s against the video's length")
    times = start_s + np.arange(len(picked)) / fps
    return VideoFrames(np.stack(picked), times, rate, stream_end)


def clip_preprocess(frames: np.ndarray, size: int = 224) -> np.ndarray:
    """CLIP's image pre-processing on uint8 RGB frames ``(T, H, W, 3)`` -> float32 ``(T, 3, size, size)``.

    The same as open_clip's (torchvision) ``Resize(size, bicubic) -> CenterCrop(size) -> ToTensor
    -> Normalize(CLIP mean, std)`` on PIL images, done with Pillow: the short side becomes
    ``size`` (long side ``int(size * long / short)``), then a centre crop (offsets rounded).
    """
    from PIL import Image

    out = np.empty((len(frames), 3, size, size), np.float32)
    mean = np.array(CLIP_MEAN, np.float32)[:, None, None]
    std = np.array(CLIP_STD, np.float32)[:, None, None]
    for k, frame in enumerate(frames):
        h, w = frame.shape[:2]
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nh, nw = size, int(size * w / h)
        img = Image.fromarray(np.ascontiguousarray(frame)).resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        out[k] = (arr - mean) / std
    return out


def fit_window(frames: np.ndarray, audio: np.ndarray, fps: float, sr: int, window_s: float, policy: str = "pad") -> tuple[np.ndarray, np.ndarray, float]:
    """Cut or pad frames and audio to exactly one window of ``window_s`` seconds.

    policy ``"pad"``: shorter clips get zero audio and the last frame repeated; ``"loop"``: they
    are repeated from the start; ``"skip"``: they raise. Longer clips keep the first window.
    Returns ``(frames[T], audio[n], padded_s)`` with ``T = round(window_s * fps)``, ``n = round(window_s * sr)``.
    """
    n_frames, n_samples = int(round(window_s * fps)), int(round(window_s * sr))
    short_s = max(0.0, window_s - min(len(frames) / fps, audio.size / sr))
    if short_s > 1e-6 and policy == "skip":
        raise ValueError(f"clip is {short_s:.2f} s shorter than the {window_s:g}-s window")
    if policy == "loop":
        reps_f = int(np.ceil(n_frames / max(1, len(frames))))
        reps_a = int(np.ceil(n_samples / max(1, audio.size)))
        frames, audio = np.concatenate([frames] * reps_f), np.tile(audio, reps_a)
    if len(frames) < n_frames:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n_frames - len(frames), axis=0)])
    if audio.size < n_samples:
        audio = np.pad(audio, (0, n_samples - audio.size))
    return frames[:n_frames], audio[:n_samples], short_s
