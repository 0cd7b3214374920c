"""ImageBind audio and vision towers against imagebind-unofficial (a packaging of Meta's
``imagebind`` code: ``ImageBindModel``, ``data.load_and_transform_audio_data``, the video transforms).

The full ``imagebind_huge`` is 1.2 B parameters (4.5 GB in float32), too large to build twice and
save on a CI machine: the towers are compared at reduced widths and depths with every structural
setting of ``imagebind_huge`` kept (patch sizes, token counts, key/value bias tokens, pre-LN,
heads, normalisation, logit scaling); ``test_huge_sizes_match`` checks the full-size shapes of the
audio and vision towers against the reference's ``imagebind_huge()`` constructor.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.parity.helpers import require, TOLERANCE, deviation, record, signals
from tiva_bench.metrics.extractors import imagebind as ib

pytestmark = pytest.mark.parity
REF = "imagebind-unofficial 0.1.1"

# The imagebind package imports pytorchvideo 0.1.5, which imports torchvision's
# ``transforms.functional_tensor``, renamed ``_functional_tensor`` since: point the old name at it.
sys.modules.setdefault("torchvision.transforms.functional_tensor", require("torchvision.transforms._functional_tensor"))
imagebind_model = require("imagebind.models.imagebind_model")
data = require("imagebind.data")
SMALL_REF = dict(out_embed_dim=40, vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4, audio_embed_dim=48, audio_num_blocks=2,
                 audio_num_heads=4, text_embed_dim=32, text_num_blocks=1, text_num_heads=2, depth_embed_dim=32, depth_num_blocks=1,
                 depth_num_heads=2, thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=2, imu_embed_dim=32, imu_num_blocks=1,
                 imu_num_heads=2)


SMALL_OURS = dict(vision_dim=64, vision_depth=2, vision_heads=4, audio_dim=48, audio_depth=2, audio_heads=4, out_dim=40)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Reference (all six modalities, random) and tiva-bench's towers loaded from its saved file."""
    torch.manual_seed(4)
    ref = imagebind_model.ImageBindModel(**SMALL_REF).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))    # LayerNorm weights, biases and positions off their defaults too
    path = tmp_path_factory.mktemp("imagebind") / "imagebind_huge.pth"
    torch.save(ref.state_dict(), path)
    ours = ib.ImageBindExtractor(batch_size=2)
    ours.arch = SMALL_OURS
    ours.load(checkpoint=path)
    return ours, ref


def test_huge_sizes_match(monkeypatch):
    linspace = torch.linspace  # the reference reads drop-path rates with .item(): keep those on the CPU
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: linspace(*a, **{**k, "device": "cpu"}))
    with torch.device("meta"):  # shapes only: no 4.5 GB of parameters
        ref = imagebind_model.imagebind_huge(pretrained=False)
        ours = ib.ImageBindAV()
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    kept, unknown = ib.select_av_state(dict.fromkeys(want, torch.empty(0)))
    assert not unknown
    assert set(got) == set(kept) and all(got[k] == want[k] for k in got)


def _reference_audio_input(monkeypatch, wav: np.ndarray) -> torch.Tensor:
    """The reference's own ``load_and_transform_audio_data`` on ``wav`` (16 kHz), its file reading
    replaced by handing over the same samples."""
    monkeypatch.setattr(data.torchaudio, "load", lambda path: (torch.from_numpy(wav.copy())[None], 16000))
    return data.load_and_transform_audio_data(["same-samples"], "cpu")


@pytest.mark.parametrize("seconds", [8.0, 7.3, 1.3, 12.0])
def test_audio_front_end_matches(monkeypatch, seconds):
    worst = 0.0
    for name, wav in signals(16000, seconds=seconds).items():
        if name in ("short", "long"):
            continue
        want = _reference_audio_input(monkeypatch, wav)[0]
        got = ib.audio_clips(wav)
        assert got.shape == want.shape, (name, seconds)
        worst = max(worst, deviation(got, want))
    record("ImageBind", f"audio fbank clips ({seconds:g} s)", REF + " data.py", worst)
    assert worst < TOLERANCE


def test_audio_embedding_matches(pair, monkeypatch):
    ours, ref = pair
    sig = signals(16000)
    wavs = np.stack([sig[k] for k in ("impulses", "tone", "noise")])
    got = ours(wavs)["embedding"]
    with torch.inference_mode():
        want = torch.cat([ref({"audio": _reference_audio_input(monkeypatch, w)})["audio"] for w in wavs]).numpy()
    # the reference multiplies the audio embedding by its fixed logit scale (20); cosines ignore it
    scale = float(ref.modality_postprocessors["audio"][1].log_logit_scale.exp())
    dev = record("ImageBind", "audio embedding (mean of unit clips)", REF, deviation(got, want / scale))
    assert dev < TOLERANCE


def _frames(n=96, fps=12.0, h=180, w=321, seed=5):  # odd crop margin: exercises the centre offset
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / w), (yy * 255 / h), ((xx + yy) % 64) * 4], axis=-1)
    frames = np.stack([np.clip(base + 40 * np.sin(i / 5) + rng.normal(0, 8, base.shape), 0, 255) for i in range(n)]).astype(np.uint8)
    return frames, np.arange(n) / fps, n / fps


def _reference_video_input(frames, times, duration):
    """The reference's video pipeline on decoded frames: its clip sampler, a clip = the frames with
    start <= t < end (the decoder's contract), UniformTemporalSubsample(2), /255, ShortSideScale(224),
    NormalizeVideo, SpatialCrop(224, 3)."""
    from pytorchvideo import transforms as pv
    from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler
    from torchvision import transforms

    sampler = ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=5)
    transform = transforms.Compose([pv.ShortSideScale(224), data.NormalizeVideo(mean=ib.CLIP_MEAN, std=ib.CLIP_STD)])
    clips = []
    for start, end in data.get_clip_timepoints(sampler, duration):
        inside = (times >= float(start)) & (times < float(end))
        clip = torch.from_numpy(frames[inside]).permute(3, 0, 1, 2).float()
        clips.append(transform(pv.UniformTemporalSubsample(num_samples=2)(clip) / 255.0))
    return torch.stack(data.SpatialCrop(224, num_crops=3)(clips))


def test_video_front_end_and_vision_embedding_match(pair):
    ours, ref = pair
    frames, times, duration = _frames()
    got_x = ib.video_clips(frames, times, duration)
    want_x = _reference_video_input(frames, times, duration)
    d_in = record("ImageBind", "video clips (5 x 3 crops, 2 frames)", REF + " data.py transforms", deviation(got_x, want_x))
    with torch.inference_mode():
        got = ours.model.embed("vision", got_x[None].to(torch.float32)).numpy()
        want = ref({"vision": want_x[None]})["vision"].numpy()
    d_out = record("ImageBind", "vision embedding", REF, deviation(got, want))
    assert d_in < TOLERANCE and d_out < TOLERANCE
