"""Real backbones without their weights: architecture sizes, the official key/shape maps, loaders
that refuse wrong files, front-ends against independent references, and failing fast offline.

The expected key/shape maps below are written from the upstream structures (torchvggish's VGG and
PANNs' Cnn14), not produced by this project's modules.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tiva_bench.metrics.extractors.loading import CheckpointMismatch
from tiva_bench.metrics.extractors.panns import Cnn14, PANNsExtractor
from tiva_bench.metrics.extractors.vggish import VGGishExtractor, VGGishNet, vggish_examples


def vggish_official_map() -> dict[str, tuple]:
    m = {}
    convs = {0: (64, 1), 3: (128, 64), 6: (256, 128), 8: (256, 256), 11: (512, 256), 13: (512, 512)}
    for idx, (cout, cin) in convs.items():
        m[f"features.{idx}.weight"] = (cout, cin, 3, 3)
        m[f"features.{idx}.bias"] = (cout,)
    for idx, (cout, cin) in {0: (4096, 512 * 4 * 6), 2: (4096, 4096), 4: (128, 4096)}.items():
        m[f"embeddings.{idx}.weight"] = (cout, cin)
        m[f"embeddings.{idx}.bias"] = (cout,)
    return m


def cnn14_official_map() -> dict[str, tuple]:
    m = {"spectrogram_extractor.stft.conv_real.weight": (257, 1, 512), "spectrogram_extractor.stft.conv_imag.weight": (257, 1, 512),
         "logmel_extractor.melW": (257, 64)}

    def bn(prefix, n):
        m.update({f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,), f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()})

    bn("bn0", 64)
    widths = (1, 64, 128, 256, 512, 1024, 2048)
    for i in range(6):
        cin, cout = widths[i], widths[i + 1]
        m[f"conv_block{i + 1}.conv1.weight"] = (cout, cin, 3, 3)
        m[f"conv_block{i + 1}.conv2.weight"] = (cout, cout, 3, 3)
        bn(f"conv_block{i + 1}.bn1", cout)
        bn(f"conv_block{i + 1}.bn2", cout)
    m.update({"fc1.weight": (2048, 2048), "fc1.bias": (2048,), "fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)})
    return m


def fake_checkpoint(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.02
    return out


def test_architectures_have_the_published_sizes_and_key_maps():
    vgg = VGGishNet()
    assert sum(p.numel() for p in vgg.parameters()) == 72_141_184  # VGGish: 72.1M
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == vggish_official_map()
    cnn = Cnn14()
    frontend = sum(p.numel() for n, p in cnn.named_parameters() if n.startswith(("spectrogram", "logmel")))
    assert sum(p.numel() for p in cnn.parameters()) - frontend == 80_753_615  # Cnn14: 80.8M
    assert {k: tuple(v.shape) for k, v in cnn.state_dict().items()} == cnn14_official_map()


def test_loaders_consume_the_official_maps_exactly_and_refuse_others(tmp_path):
    torch.save(fake_checkpoint(vggish_official_map()), tmp_path / "vggish.pth")
    ex = VGGishExtractor().load(checkpoint=tmp_path / "vggish.pth")
    assert ex.model.features[0].weight.shape == (64, 1, 3, 3)
    torch.save({"model": fake_checkpoint(cnn14_official_map()), "iteration": 1}, tmp_path / "cnn14.pth")
    PANNsExtractor().load(checkpoint=tmp_path / "cnn14.pth")
    truncated_map = dict(vggish_official_map())
    truncated_map.pop("embeddings.4.bias")
    torch.save(fake_checkpoint(truncated_map), tmp_path / "short.pth")
    with pytest.raises(CheckpointMismatch, match="1 missing"):
        VGGishExtractor().load(checkpoint=tmp_path / "short.pth")
    wrong = dict(vggish_official_map(), **{"embeddings.4.weight": (527, 4096)})
    torch.save(fake_checkpoint(wrong), tmp_path / "wrong.pth")
    with pytest.raises(CheckpointMismatch, match="other shapes"):
        VGGishExtractor().load(checkpoint=tmp_path / "wrong.pth")
    raw = (tmp_path / "cnn14.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointMismatch, match="cannot be read"):
        PANNsExtractor().load(checkpoint=tmp_path / "cut.pth")


def reference_vggish_logmel(wav):
    """Loop-and-formula version of the published VGGish front-end."""
    win, hop, nfft, lo, hi = 400, 160, 512, 125.0, 7500.0
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    edges = [mel(lo) + (mel(hi) - mel(lo)) * i / 65 for i in range(66)]
    freqs = [i * 8000.0 / 256 for i in range(257)]
    matrix = np.zeros((257, 64))
    for b in range(1, 257):
        m = mel(freqs[b])
        for j in range(64):
            left, centre, right = edges[j], edges[j + 1], edges[j + 2]
            if left < m < right:
                matrix[b, j] = (m - left) / (centre - left) if m <= centre else (right - m) / (right - centre)
    hann = np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / win) for n in range(win)])
    frames = [wav[s:s + win] * hann for s in range(0, len(wav) - win + 1, hop)]
    spec = np.abs(np.fft.rfft(np.array(frames), nfft))
    return np.log(spec @ matrix + 0.01)


def test_vggish_front_end_matches_the_published_recipe():
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(16000 * 2) * 0.1).astype(np.float32)
    ours = vggish_examples(wav)
    ref = reference_vggish_logmel(wav.astype(np.float64))
    assert ours.shape == (2, 96, 64)
    np.testing.assert_allclose(ours.reshape(-1, 64), ref[:192], rtol=1e-4, atol=1e-4)
    assert vggish_examples(np.zeros(100, np.float32)).shape == (0, 96, 64)


def test_panns_front_end_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    wav = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    ours = Cnn14().log_mel(torch.from_numpy(wav[None]))[0, 0].detach().numpy()
    mel = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, hop_length=160, window="hann", center=True, pad_mode="reflect",
                                         power=2.0, n_mels=64, fmin=50, fmax=8000)
    np.testing.assert_allclose(ours, 10 * np.log10(np.maximum(mel, 1e-10)).T, atol=2e-3)


def test_outputs_have_the_declared_shapes_and_ignore_batching(tmp_path):
    torch.save({"model": fake_checkpoint(cnn14_official_map(), seed=3)}, tmp_path / "cnn14.pth")
    torch.save(fake_checkpoint(vggish_official_map(), seed=4), tmp_path / "vggish.pth")
    wavs = (np.random.default_rng(2).standard_normal((3, 8 * 16000)) * 0.1).astype(np.float32)
    panns = PANNsExtractor(batch_size=3).load(checkpoint=tmp_path / "cnn14.pth")
    out = panns(wavs)
    assert out["embedding"].shape == (3, 2048) and out["logits"].shape == (3, 527)
    one = np.concatenate([panns(w[None])["logits"] for w in wavs])
    np.testing.assert_allclose(out["logits"], one, rtol=1e-4, atol=1e-4)
    vgg = VGGishExtractor().load(checkpoint=tmp_path / "vggish.pth")
    assert vgg(wavs)["embedding"].shape == (3, 8, 128)


def test_missing_weights_fail_fast_with_the_download_command(tmp_path, media_pair_dirs):
    gen, ref = media_pair_dirs
    env = {**os.environ, "TIVA_BENCH_CACHE": str(tmp_path / "empty-cache"), "TIVA_BENCH_WEIGHTS": ""}
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", "metrics", str(gen), str(ref), "--metrics", "fad_vggish"],
                          capture_output=True, text=True, timeout=120, env=env)  # a network wait would hang far longer
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # it stops before any decoding: the CPU it used is start-up only (a load-independent measure)
    assert proc.returncode == 2 and cpu_s < 10, (proc.returncode, cpu_s)
    assert "vggish-10086976.pth" in proc.stderr and "tiva-bench weights download vggish" in proc.stderr
    assert "https://github.com/harritaylor/torchvggish" in proc.stderr


def test_melception_is_inception_v3_with_a_one_channel_stem_and_309_classes(tmp_path):
    """Upstream structure: torchvision's Inception3(num_classes=309) with Conv2d_1a_3x3 taking one
    channel and the two early max-pools removed (parameter-free, so absent from the key map)."""
    from torchvision.models.inception import Inception3

    from tiva_bench.metrics.extractors.melception import MelceptionExtractor, build_melception

    upstream = {k: tuple(v.shape) for k, v in Inception3(num_classes=309, aux_logits=True, init_weights=False).state_dict().items()}
    upstream["Conv2d_1a_3x3.conv.weight"] = (32, 1, 3, 3)
    ours = {k: tuple(v.shape) for k, v in build_melception().state_dict().items()}
    assert ours == upstream and ours["fc.weight"] == (309, 2048) and ours["AuxLogits.fc.weight"] == (309, 768)
    np.savetxt(tmp_path / "stats.txt", np.stack([np.full(80, 0.5), np.full(80, 0.2)], axis=1))
    torch.save({"model": fake_checkpoint(upstream)}, tmp_path / "melception.pt")
    ex = MelceptionExtractor(batch_size=2).load(checkpoint=tmp_path / "melception.pt", stats=tmp_path / "stats.txt")
    out = ex((np.random.default_rng(0).standard_normal((2, 8 * 22050)) * 0.1).astype(np.float32))
    assert out["embedding"].shape == (2, 2048) and out["logits"].shape == (2, 309)
    np.testing.assert_allclose(out["logits"] - out["logits_unbiased"], np.broadcast_to(ex.model.fc.bias.detach().numpy(), (2, 309)), atol=1e-4)
    np.savetxt(tmp_path / "bad_stats.txt", np.ones((64, 2)))
    from tiva_bench.core.errors import TivaBenchError

    with pytest.raises(TivaBenchError, match="expected"):
        MelceptionExtractor().load(checkpoint=tmp_path / "melception.pt", stats=tmp_path / "bad_stats.txt")


def test_melception_front_end_matches_a_numpy_reference():
    librosa = pytest.importorskip("librosa")
    from tiva_bench.metrics.extractors.melception import melception_spectrogram

    wav = (np.random.default_rng(3).standard_normal(22050) * 0.2).astype(np.float32)
    padded = np.pad(wav.astype(np.float64), (512, 512), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    frames = np.stack([padded[s:s + 1024] * window for s in range(0, padded.size - 1024 + 1, 256)])
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    mel = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=125, fmax=7600) @ mag
    ref = np.clip((20 * np.log10(np.maximum(mel, 1e-5)) + 80) / 100, 0, 1)
    np.testing.assert_allclose(melception_spectrogram(wav), ref, atol=1e-4)


def test_passt_is_hear21passt_with_the_10s_positional_grid(tmp_path):
    pytest.importorskip("hear21passt")
    from tiva_bench.metrics.extractors.passt import PaSSTExtractor, build_passt

    _, net = build_passt()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["freq_new_pos_embed"] == (1, 768, 12, 1) and shapes["time_new_pos_embed"] == (1, 768, 1, 99)  # 128x998 input, stride 10
    assert shapes["head.1.weight"] == (527, 768) and shapes["head_dist.weight"] == (527, 768)
    assert 85e6 < sum(p.numel() for p in net.parameters()) < 87e6  # PaSST-S: ~86M
    torch.save(fake_checkpoint(shapes), tmp_path / "passt.pt")
    ex = PaSSTExtractor(batch_size=2).load(checkpoint=tmp_path / "passt.pt")
    out = ex((np.random.default_rng(1).standard_normal((2, 8 * 32000)) * 0.1).astype(np.float32))
    assert out["embedding"].shape == (2, 768) and out["logits"].shape == (2, 527)
    shapes.pop("dist_token")
    torch.save(fake_checkpoint(shapes), tmp_path / "short.pt")
    with pytest.raises(CheckpointMismatch, match="missing"):
        PaSSTExtractor().load(checkpoint=tmp_path / "short.pt")


def imagebind_official_av_map() -> dict[str, tuple]:
    """The audio/vision part of imagebind_huge's checkpoint, from the upstream structure."""
    m = {}
    for mod, dim, depth, n_patch, bias_kv in (("vision", 1280, 32, 256, False), ("audio", 768, 12, 228, True)):
        pre = f"modality_preprocessors.{mod}"
        m[f"{pre}.cls_token"] = (1, 1, dim)
        m[f"{pre}.pos_embedding_helper.pos_embed"] = (1, n_patch + 1, dim)
        trunk = f"modality_trunks.{mod}"
        for i in range(depth):
            b = f"{trunk}.blocks.{i}"
            m.update({f"{b}.attn.in_proj_weight": (3 * dim, dim), f"{b}.attn.in_proj_bias": (3 * dim,), f"{b}.attn.out_proj.weight": (dim, dim),
                      f"{b}.attn.out_proj.bias": (dim,), f"{b}.norm_1.weight": (dim,), f"{b}.norm_1.bias": (dim,), f"{b}.norm_2.weight": (dim,),
                      f"{b}.norm_2.bias": (dim,), f"{b}.mlp.fc1.weight": (4 * dim, dim), f"{b}.mlp.fc1.bias": (4 * dim,),
                      f"{b}.mlp.fc2.weight": (dim, 4 * dim), f"{b}.mlp.fc2.bias": (dim,)})
            if bias_kv:
                m[f"{b}.attn.bias_k"] = (1, 1, dim)
                m[f"{b}.attn.bias_v"] = (1, 1, dim)
        m[f"modality_heads.{mod}.0.weight"] = (dim,)
        m[f"modality_heads.{mod}.0.bias"] = (dim,)
        m[f"modality_heads.{mod}.2.weight"] = (1024, dim)
    m["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] = (1280, 3, 2, 14, 14)
    m["modality_trunks.vision.pre_transformer_layer.0.weight"] = (1280,)
    m["modality_trunks.vision.pre_transformer_layer.0.bias"] = (1280,)
    m["modality_preprocessors.audio.rgbt_stem.proj.weight"] = (768, 1, 16, 16)
    m["modality_preprocessors.audio.rgbt_stem.norm_layer.weight"] = (768,)
    m["modality_preprocessors.audio.rgbt_stem.norm_layer.bias"] = (768,)
    m["modality_postprocessors.audio.1.log_logit_scale"] = ()
    return m


def test_imagebind_towers_have_the_official_key_map_and_sizes():
    from tiva_bench.metrics.extractors.imagebind import ImageBindAV

    with torch.device("meta"):
        model = ImageBindAV()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == imagebind_official_av_map()
    vision = sum(v.numel() for k, v in model.state_dict().items() if ".vision." in k)
    audio = sum(v.numel() for k, v in model.state_dict().items() if ".audio." in k)
    assert 630e6 < vision < 635e6 and 85e6 < audio < 88e6  # ViT-H/14 and ViT-B audio towers


def test_imagebind_loader_skips_other_modalities_and_refuses_strangers(tmp_path):
    """The loading path at small widths (the full-size key map is checked above)."""
    import tiva_bench.metrics.extractors.imagebind as ib

    small = dict(vision_dim=32, vision_depth=1, vision_heads=2, audio_dim=16, audio_depth=1, audio_heads=2, out_dim=8)
    state = dict(ib.ImageBindAV(**small).state_dict())
    state["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)  # another modality: skipped
    torch.save(state, tmp_path / "ib.pth")
    ex = ib.ImageBindExtractor()
    ex.arch = small
    ex.load(checkpoint=tmp_path / "ib.pth")
    emb = ex((np.random.default_rng(0).standard_normal((2, 8 * 16000)) * 0.1).astype(np.float32))["embedding"]
    assert emb.shape == (2, 8) and np.all(np.linalg.norm(emb, axis=1) <= 1 + 1e-5)  # a mean of unit vectors
    state["mystery.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    bad = ib.ImageBindExtractor()
    bad.arch = small
    with pytest.raises(CheckpointMismatch, match="no ImageBind modality"):
        bad.load(checkpoint=tmp_path / "bad.pth")


def test_imagebind_preprocessing_clip_layout():
    from tiva_bench.metrics.extractors.imagebind import audio_clips, clip_starts, video_clips

    assert clip_starts(8.0, 3) == [0.0, 2.0, 4.0]
    assert clip_starts(10.0, 5) == pytest.approx([0.0, 1.6, 3.2, 4.8, 6.4])
    assert clip_starts(1.0, 3) == [0.0, 0.0, 0.0]
    wav = (np.random.default_rng(0).standard_normal(8 * 16000) * 0.1).astype(np.float32)
    clips = audio_clips(wav)
    assert clips.shape == (3, 1, 128, 204)
    frames = np.random.default_rng(1).integers(0, 255, (80, 90, 160, 3), dtype=np.uint8)
    video = video_clips(frames, np.arange(80) / 10.0, 8.0)
    assert video.shape == (15, 3, 2, 224, 224)


def test_imagebind_score_plumbing_through_the_runner(tmp_path, monkeypatch):
    """Random small towers (plumbing only): the runner pairs each generated clip with its video
    (a video beside the reference wav) and the score equals the mean cosine computed directly."""
    import tiva_bench.metrics.extractors.imagebind as ib
    from tiva_bench import synthetic
    from tiva_bench.config import ScoreConfig
    from tiva_bench.runner import score_folders
    from tiva_bench.core.weights import WEIGHTS

    small = dict(vision_dim=32, vision_depth=1, vision_heads=2, audio_dim=16, audio_depth=1, audio_heads=2, out_dim=8)
    monkeypatch.setattr(ib.ImageBindExtractor, "arch", small)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(ib.ImageBindAV(**small).state_dict(), weights / "imagebind_huge.pth")
    monkeypatch.setattr(WEIGHTS, "dirs", [weights])
    synthetic.generate(tmp_path / "s", {"test": 3}, seed=4, workers=1, duration_s=4.0)
    ref = tmp_path / "s" / "test"
    cfg = ScoreConfig(metrics=["imagebind_score"], workers=1, cache_dir=str(tmp_path / "cache"))
    res = score_folders(ref, ref, cfg)  # the references' own audio as the generated set
    ex = ib.ImageBindExtractor()
    ex.load()
    names = sorted(p.stem for p in ref.glob("*.wav"))
    from tiva_bench.core.audio import AudioClip

    audio = ex(np.stack([AudioClip.load(ref / f"{n}.wav", 8.0).at(16000) for n in names]))["embedding"]
    video = ex.embed_videos([ref / f"{n}.mp4" for n in names])
    cos = np.sum(audio * video, axis=1) / (np.linalg.norm(audio, axis=1) * np.linalg.norm(video, axis=1))
    assert res.metrics["imagebind_score"].value == pytest.approx(float(cos.mean()), abs=1e-5)
    assert res.metrics["imagebind_score"].n == 3
