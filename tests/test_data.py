"""The real-data layer: frame sampling, CLIP pre-processing, windows, datasets, bad videos, CLIP cache."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tiva_bench.core import data
from tiva_bench.core.errors import InputError
from tiva_bench.core.media_write import write_video
from tiva_bench.core.video import clip_preprocess, decode_frames
from tests.conftest import clicks


def index_frames(n, size=(32, 32)):
    """Grey frames whose level encodes their index (grey survives RGB->YUV->RGB; steps of 4)."""
    frames = np.zeros((n, *size, 3), np.uint8)
    for i in range(n):
        frames[i] = 16 + i * 4
    return frames


def decoded_index(frames):
    return np.round((frames.mean(axis=(1, 2, 3)) - 16) / 4).astype(int)


@pytest.mark.parametrize("fps", [25, 29.97, 21.5, 10, 6])
def test_frames_are_sampled_at_10fps_by_timestamp(tmp_path, fps):
    n = int(round(2 * fps))
    write_video(tmp_path / "v.mp4", index_frames(n), fps, None, crf=0)
    got = decode_frames(tmp_path / "v.mp4", fps=10)
    n_samples = int(np.ceil(n / fps * 10 - 1e-9))  # sampling times k/10 inside the video
    expected = np.floor(np.arange(n_samples) / 10 * fps + 1e-6).astype(int)  # frame on screen at k/10 s
    assert got.frames.shape[0] == n_samples
    np.testing.assert_array_equal(decoded_index(got.frames), expected)


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    import av

    times_ms = [0, 40, 70, 190, 200, 450, 460, 700, 990]  # irregular
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1000)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"crf": "0"}
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(index_frames(len(times_ms))[i], format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    got = decode_frames(path, fps=10, duration_s=1.0)
    sample_ms = np.arange(10) * 100
    expected = [max(i for i, t in enumerate(times_ms) if t <= ms) for ms in sample_ms]
    np.testing.assert_array_equal(decoded_index(got.frames), expected)


def test_clip_preprocess_matches_torchvision():
    tv = pytest.importorskip("torchvision.transforms")
    from PIL import Image

    rng = np.random.default_rng(0)
    for h, w in [(360, 640), (640, 360), (100, 120), (224, 224)]:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        reference = tv.Compose([
            tv.Resize(224, interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(224), tv.ToTensor(),
            tv.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ])(Image.fromarray(frame)).numpy()
        np.testing.assert_allclose(clip_preprocess(frame[None])[0], reference, atol=1e-5)


def test_av_window_pads_short_clips_and_cuts_long_ones(tmp_path):
    write_video(tmp_path / "short.mp4", index_frames(30), 10, clicks((0.5,), duration_s=3.0), 16000)
    w = data.load_av_window(data.VideoItem("short", tmp_path / "short.mp4"), window_s=5.0, policy="pad")
    assert w.frames.shape[0] == 50 and w.audio.shape == (80000,) and w.padded_s == pytest.approx(2.0, abs=0.1)
    assert decoded_index(w.frames[-5:]).tolist() == [29] * 5 and np.all(w.audio[3 * 16000 + 2048:] == 0)
    w = data.load_av_window(data.VideoItem("short", tmp_path / "short.mp4"), window_s=2.0)
    assert w.frames.shape[0] == 20 and w.audio.shape == (32000,) and w.padded_s == 0
    with pytest.raises(InputError, match="shorter than"):
        data.load_av_window(data.VideoItem("short", tmp_path / "short.mp4"), window_s=5.0, policy="skip")
    loop = data.load_av_window(data.VideoItem("short", tmp_path / "short.mp4"), window_s=5.0, policy="loop")
    assert decoded_index(loop.frames[30:33]).tolist() == [0, 1, 2]


def test_bad_videos_get_clear_reasons(tmp_path):
    write_video(tmp_path / "mute.mp4", index_frames(10), 10, None)
    with pytest.raises(InputError, match="no audio stream"):
        data.load_av_window(data.VideoItem("mute", tmp_path / "mute.mp4"), window_s=1.0)
    ok = data.load_av_window(data.VideoItem("mute", tmp_path / "mute.mp4"), window_s=1.0, need_audio=False)
    assert ok.audio is None and ok.frames.shape[0] == 10
    write_video(tmp_path / "audio_only.m4a", None, 10, clicks((0.1,), duration_s=1.0), 16000)
    with pytest.raises(InputError, match="no video stream"):
        decode_frames(tmp_path / "audio_only.m4a")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        decode_frames(tmp_path / "empty.mp4")
    write_video(tmp_path / "full.mp4", index_frames(50), 10, clicks((0.1,), duration_s=5.0), 16000)
    raw = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "broken.mp4").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError):
        data.load_av_window(data.VideoItem("broken", tmp_path / "broken.mp4"), window_s=1.0)
    write_video(tmp_path / "tiny.mp4", index_frames(10, (8, 8)), 10, clicks((0.1,), duration_s=1.0), 16000)
    with pytest.raises(InputError, match="smaller than"):
        data.load_av_window(data.VideoItem("tiny", tmp_path / "tiny.mp4"), window_s=1.0)
    write_video(tmp_path / "portrait.mp4", index_frames(10, (64, 36)), 10, clicks((0.1,), duration_s=1.0), 16000)
    w = data.load_av_window(data.VideoItem("portrait", tmp_path / "portrait.mp4"), window_s=1.0)
    assert any("portrait" in n for n in w.notes)


def test_vggsound_csv_names_and_splits(tmp_path):
    csv_path = tmp_path / "vggsound.csv"
    csv_path.write_text("---g-f_I2yQ,1,people marching,test\nabc,30,dog barking,train\nzzz,5,cat,test\n")
    (tmp_path / "clips" / "sub").mkdir(parents=True)
    for name in ("---g-f_I2yQ_000001", "abc_000030"):
        write_video(tmp_path / "clips" / "sub" / f"{name}.mp4", index_frames(5), 10, None)
    items, missing = data.vggsound_items(csv_path, tmp_path / "clips", split="test")
    assert [i.key for i in items] == ["---g-f_I2yQ_000001"] and items[0].label == "people marching"
    assert missing == ["zzz_000005"]
    items, _ = data.vggsound_items(csv_path, tmp_path / "clips")
    assert len(items) == 2


def test_shards_partition_the_items():
    items = list(range(23))
    parts = [data.shard(items, i, 4) for i in range(4)]
    assert sorted(x for p in parts for x in p) == items
    assert all(not set(a) & set(b) for k, a in enumerate(parts) for b in parts[k + 1:])


def test_clip_feature_cache_plumbing_with_random_init_encoder(tmp_path):
    """Shapes, caching and resumption only; a random-init encoder's features are never reported."""
    pytest.importorskip("open_clip")
    from tiva_bench.models.tiva.clip_encoder import CLIPFrameEncoder
    from tiva_bench.clip_features import clip_cache, extract_clip_features, load_clip_features

    vids = tmp_path / "v"
    for k in range(3):  # different content: the cache is keyed by content
        write_video(vids / f"c{k}.mp4", index_frames(12, (48, 64)) + 4 * k, 10, None)
    (vids / "bad.mp4").write_bytes(b"not a video")
    encoder = CLIPFrameEncoder(random_init=True, patch_grid=2)
    cache = clip_cache(encoder, window_s=1.0, root=tmp_path / "cache")
    assert cache.settings["weights"] == "random-init"
    items = data.folder_items(vids)
    first = extract_clip_features(data.shard(items, 0, 2), encoder, cache)
    second = extract_clip_features(items, encoder, cache)
    assert first.computed + second.computed == 3 and second.cached == first.computed
    assert [s["clip"] for s in first.skipped + second.skipped].count("bad") >= 1
    feats = load_clip_features(cache, vids / "c1.mp4")
    assert feats["cls"].shape == (10, 3, 768) and feats["patch"].shape == (10, 3, 4, 768)
    assert feats["cls"].dtype == np.float16 and np.isfinite(feats["cls"].astype(np.float32)).all()
