"""ImageBind (Girdhar et al. 2023), audio and vision towers of ``imagebind_huge``, written for
tiva-bench and loading the official checkpoint (only these two towers are used; the checkpoint's
text, depth, thermal and IMU weights are recognised and skipped).

Audio tower: waveform at 16 kHz, 3 clips of 2 s starting at ``i * max(D - 2, 0) / 3``; per clip,
Kaldi fbank (HTK-compatible, Hanning, 128 bins, 25/10 ms, no dither) of the mean-removed samples,
padded/cut to 204 frames, normalised with mean -4.268 and std 9.138; a 16x16 stride-10 patch
embedding (12 x 19 patches) + LayerNorm, a CLS token, learned positions, 12 pre-norm transformer
blocks (768 wide, 12 heads, learned key/value bias tokens); LayerNorm, the CLS token, a linear
map to 1024. Vision tower: 5 clips of 2 s, 2 frames each (the clip's first and last frame), short
side scaled to 224 (bilinear), CLIP mean/std, 3 spatial crops of 224; a (2, 14, 14) Conv3d patch
embedding, CLS token, learned positions, LayerNorm, 32 blocks (1280 wide, 16 heads); LayerNorm,
CLS, a linear map to 1024. Each modality's embedding is the mean of its clips' unit-normalised
embeddings. The ImageBind score is the cosine similarity of a video's and its audio's embeddings.

Two implementations of the audio front-end: ``audio_clips`` (torchaudio's Kaldi fbank, one clip at
a time: the reference) and ``audio_clips_batched`` (the same maths batched on the extractor's
device); they agree within 1e-4 of the normalised fbank's range (tests/test_frontends.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tiva_bench.core.video import decode_frames
from tiva_bench.core.weights import WEIGHTS
from tiva_bench.metrics.extractors.base import AudioExtractor, ExtractorSpec, register
from tiva_bench.metrics.extractors.loading import CheckpointMismatch, load_exactly, read_state_dict

AUDIO_SR, N_MELS, TARGET_FRAMES, FB_MEAN, FB_STD = 16000, 128, 204, -4.268, 9.138
CLIP_S, AUDIO_CLIPS, VIDEO_CLIPS = 2.0, 3, 5
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OTHER_MODALITIES = ("text", "depth", "thermal", "imu")


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, bias_kv: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, bias=True, add_bias_kv=bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (L, B, D), sequence first
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm_2(x))))


class _Trunk(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, bias_kv: bool, pre_ln: bool):
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(dim, eps=1e-6) if pre_ln else nn.Identity())
        self.blocks = nn.Sequential(*[_Block(dim, heads, bias_kv) for _ in range(depth)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        x = self.pre_transformer_layer(tokens).transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        return x.transpose(0, 1)


class _Stem(nn.Module):
    def __init__(self, proj: nn.Module, norm: nn.Module | None):
        super().__init__()
        self.proj = proj
        self.norm_layer = norm

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.norm_layer(x) if self.norm_layer is not None else x


class _PosHelper(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))


class _Preprocessor(nn.Module):
    def __init__(self, stem_name: str, stem: _Stem, n_patches: int, dim: int):
        super().__init__()
        setattr(self, stem_name, stem)
        self.stem_name = stem_name
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding_helper = _PosHelper(n_patches + 1, dim)

    def forward(self, x):
        tokens = getattr(self, self.stem_name)(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class _Conv3dStem(nn.Module):
    """Index 1 holds the Conv3d (index 0 is the parameter-free image-to-video padding)."""

    def __init__(self, dim: int):
        super().__init__()
        self.add_module("0", nn.Identity())
        self.add_module("1", nn.Conv3d(3, dim, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=False))

    def forward(self, x):
        return getattr(self, "1")(x)


class _Scaling(nn.Module):
    def __init__(self, init: float):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.ones([]) * math.log(init))


class ImageBindAV(nn.Module):
    """Audio + vision towers with the official module names (``modality_*.audio|vision``)."""

    def __init__(self, vision_dim=1280, vision_depth=32, vision_heads=16, audio_dim=768, audio_depth=12, audio_heads=12, out_dim=1024):
        super().__init__()
        vision_stem = _Stem(_Conv3dStem(vision_dim), None)
        audio_stem = _Stem(nn.Conv2d(1, audio_dim, kernel_size=16, stride=10, bias=False), nn.LayerNorm(audio_dim))
        self.modality_preprocessors = nn.ModuleDict({
            "vision": _Preprocessor("rgbt_stem", vision_stem, 16 * 16, vision_dim),
            "audio": _Preprocessor("rgbt_stem", audio_stem, 12 * 19, audio_dim),
        })
        self.modality_trunks = nn.ModuleDict({
            "vision": _Trunk(vision_dim, vision_depth, vision_heads, bias_kv=False, pre_ln=True),
            "audio": _Trunk(audio_dim, audio_depth, audio_heads, bias_kv=True, pre_ln=False),
        })
        self.modality_heads = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(d, eps=1e-6), nn.Identity(), nn.Linear(d, out_dim, bias=False))
            for m, d in (("vision", vision_dim), ("audio", audio_dim))
        })
        self.modality_postprocessors = nn.ModuleDict({"audio": nn.Sequential(nn.Identity(), _Scaling(20.0))})

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, S, ...)`` clips -> ``(B, 1024)``: mean over clips of unit-normalised embeddings."""
        b, s = x.shape[:2]
        tokens = self.modality_preprocessors[modality](x.reshape(b * s, *x.shape[2:]))
        out = self.modality_trunks[modality](tokens)
        emb = self.modality_heads[modality](out[:, 0])
        return F.normalize(emb, dim=-1).reshape(b, s, -1).mean(dim=1)


def _exact_starts(duration_s: float, clips: int, clip_s: float = CLIP_S) -> list[Fraction]:
    """Clip starts as exact fractions, as pytorchvideo's ``ConstantClipsPerVideoSampler`` makes
    them: ``Fraction(max(D - clip_s, 0)) / clips * i`` (D and the subtraction in float)."""
    step = Fraction(Fraction(max(duration_s - clip_s, 0)), clips)
    return [step * i for i in range(clips)]


def clip_starts(duration_s: float, clips: int, clip_s: float = CLIP_S) -> list[float]:
    """Constant-clips-per-video sampling: ``i * max(D - clip_s, 0) / clips`` seconds."""
    return [float(s) for s in _exact_starts(duration_s, clips, clip_s)]


def audio_clips(wav: np.ndarray) -> torch.Tensor:
    """16-kHz mono waveform -> normalised fbank clips ``(3, 1, 128, 204)``.

    Clip ``i`` holds samples ``floor(s_i * sr)`` to ``floor((s_i + 2) * sr)`` with exact starts
    ``s_i``, as ImageBind's ``load_and_transform_audio_data`` cuts them (a rounded start would move
    clips by one sample whenever ``s_i * sr`` is not an integer, e.g. for a 7.3-s clip). Each
    clip's mean is removed in place on one shared copy of the waveform, as the reference does:
    where clips overlap (clips shorter than 8 s) a later clip sees the earlier clips' mean removal.
    """
    import torchaudio

    wav = torch.tensor(np.asarray(wav, np.float32))  # a copy: the caller's array is not touched
    out = []
    for start in _exact_starts(wav.numel() / AUDIO_SR, AUDIO_CLIPS):
        seg = wav[int(start * AUDIO_SR): int((start + Fraction(CLIP_S)) * AUDIO_SR)]
        seg -= seg.mean()
        fbank = torchaudio.compliance.kaldi.fbank(seg[None], htk_compat=True, sample_frequency=AUDIO_SR, use_energy=False,
                                                  window_type="hanning", num_mel_bins=N_MELS, dither=0.0, frame_length=25, frame_shift=10).T
        fbank = F.pad(fbank, (0, max(0, TARGET_FRAMES - fbank.shape[1])))[:, :TARGET_FRAMES]
        out.append(((fbank - FB_MEAN) / FB_STD)[None])
    return torch.stack(out)


def kaldi_mel_banks() -> torch.Tensor:
    """``(257, 128)`` Kaldi mel weights for 512-point FFTs at 16 kHz, 20 Hz to Nyquist (the
    Nyquist row is zero, as in Kaldi)."""
    import torchaudio

    banks, _ = torchaudio.compliance.kaldi.get_mel_banks(N_MELS, 512, float(AUDIO_SR), 20.0, 0.0, 100.0, -500.0, 1.0)
    return F.pad(banks, (0, 1)).T.contiguous()


def kaldi_fbank_batched(x: torch.Tensor, banks: torch.Tensor) -> torch.Tensor:
    """``(N, L)`` 16-kHz clips -> ``(N, frames, 128)`` log mel energies, Kaldi's recipe as
    ``audio_clips`` calls it: 400-sample frames every 160 (only whole frames), each frame's mean
    removed, pre-emphasis 0.97 (first sample against itself), symmetric Hann, 512-point power
    spectrum, mel weights ``banks`` (from ``kaldi_mel_banks``), ``log(max(., float32 eps))``."""
    if x.shape[-1] < 400:
        return x.new_zeros((x.shape[0], 0, banks.shape[1]))
    frames = x.unfold(-1, 400, 160)                                                # N, m, 400
    frames = frames - frames.mean(dim=-1, keepdim=True)
    frames = frames - 0.97 * torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames * torch.hann_window(400, periodic=False, device=x.device, dtype=x.dtype)
    power = torch.fft.rfft(frames, 512).abs().pow(2)                              # N, m, 257
    return torch.clamp(power @ banks, min=torch.finfo(torch.float32).eps).log()


def audio_clips_batched(wavs: torch.Tensor, banks: torch.Tensor) -> torch.Tensor:
    """``audio_clips`` for a batch of equal-length waveforms ``(B, n)`` -> ``(B, 3, 1, 128, 204)``,
    with the reference's clip cuts and its in-place mean removal on one shared copy."""
    x = wavs.clone()
    segments = []
    for start in _exact_starts(x.shape[-1] / AUDIO_SR, AUDIO_CLIPS):
        seg = x[:, int(start * AUDIO_SR): int((start + Fraction(CLIP_S)) * AUDIO_SR)]
        seg -= seg.mean(dim=-1, keepdim=True)
        segments.append(seg.clone())
    b, length = x.shape[0], segments[0].shape[-1]
    fbank = kaldi_fbank_batched(torch.stack(segments, dim=1).reshape(b * AUDIO_CLIPS, length), banks).transpose(1, 2)
    fbank = F.pad(fbank, (0, max(0, TARGET_FRAMES - fbank.shape[-1])))[..., :TARGET_FRAMES]      # B*3, 128, 204
    return ((fbank - FB_MEAN) / FB_STD).reshape(b, AUDIO_CLIPS, 1, N_MELS, TARGET_FRAMES)


def video_clips(frames: np.ndarray, times_s: np.ndarray, duration_s: float) -> torch.Tensor:
    """Decoded frames ``(N, H, W, 3)`` uint8 with their times -> ``(15, 3, 2, 224, 224)``:
    5 temporal clips x 3 spatial crops, each the clip's first and last frame."""
    clips = []
    mean = torch.tensor(CLIP_MEAN)[:, None, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None, None]
    for start in clip_starts(duration_s, VIDEO_CLIPS):
        inside = np.flatnonzero((times_s >= start - 1e-6) & (times_s < start + CLIP_S - 1e-6))
        if inside.size == 0:
            inside = np.array([int(np.argmin(np.abs(times_s - start)))])
        pick = frames[[inside[0], inside[-1]]]
        x = torch.from_numpy(pick).float().permute(3, 0, 1, 2) / 255.0           # C,T,H,W
        h, w = x.shape[-2:]
        # pytorchvideo's ShortSideScale: the long side is floor(long / short * 224)
        nh, nw = (int(math.floor(h / w * 224)), 224) if w < h else (224, int(math.floor(w / h * 224)))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        x = (x - mean) / std
        for k in range(3):  # left/top, centre (offset rounded up, as ImageBind's uniform_crop), right/bottom
            if nw >= nh:
                off = [0, math.ceil((nw - 224) / 2), nw - 224][k]
                clips.append(x[..., :224, off:off + 224])
            else:
                off = [0, math.ceil((nh - 224) / 2), nh - 224][k]
                clips.append(x[..., off:off + 224, :224])
    return torch.stack(clips)


SPEC = register(ExtractorSpec(
    name="imagebind", version="2", sample_rate=AUDIO_SR, window_s=8.0, outputs={"embedding": 1024}, weights=("imagebind_huge",),
    frontend={"audio": "kaldi-fbank-128x204, 3x2s clips, mean -4.268 std 9.138", "video": "5x2s clips x 2 frames x 3 crops, 224"},
    target="tiva_bench.metrics.extractors.imagebind:ImageBindExtractor",
))


def select_av_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Keep the audio/vision towers' entries; return them and any key of no known modality."""
    keep, unknown = {}, []
    for k, v in state.items():
        parts = k.split(".")
        modality = parts[1] if len(parts) > 1 else ""
        if modality in ("audio", "vision"):
            if k.startswith("modality_postprocessors.vision"):
                continue
            keep[k] = v
        elif modality not in OTHER_MODALITIES:
            unknown.append(k)
    return keep, unknown


class ImageBindExtractor(AudioExtractor):
    """Audio embeddings via ``__call__``; video embeddings via ``embed_videos(paths)``."""

    spec = SPEC
    arch: dict = {}  # ImageBindAV widths; empty = imagebind_huge (tests use small ones)
    device_frontend_differs = True
    cuda_precision = "float32"

    def load(self, checkpoint=None):
        path = checkpoint or WEIGHTS.require("imagebind_huge")
        state, unknown = select_av_state(read_state_dict(path))
        if unknown:
            raise CheckpointMismatch(f"{path} has keys of no ImageBind modality (e.g. {unknown[0]})")
        self.build()
        load_exactly(self.model, state, str(path))
        self.files = (path,)
        return super().load()

    def build(self):
        self.model = ImageBindAV(**self.arch).eval().requires_grad_(False).to(self.device)
        self.banks = kaldi_mel_banks().to(self.device)
        return self


    def reference_inputs(self, wavs: np.ndarray) -> torch.Tensor:
        return torch.stack([audio_clips(w) for w in wavs]).to(self.device)

    def device_inputs(self, wavs: torch.Tensor) -> torch.Tensor:
        return audio_clips_batched(wavs, self.banks)

    def network(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": self.model.embed("audio", x)}

    def embed_videos(self, paths) -> np.ndarray:
        """Video files -> ``(B, 1024)`` vision embeddings (the whole video, native frame times)."""

        if not self._loaded:
            self.load()
        rows = []
        for p in paths:
            v = decode_frames(p, fps=30.0)  # fine sampling; each clip keeps its first and last frame
            x = video_clips(v.frames, v.times_s, v.duration_s)[None].to(self.device)
            with torch.inference_mode():
                rows.append(self.model.embed("vision", x).cpu().numpy()[0])
        return np.stack(rows)
