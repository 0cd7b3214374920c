"""Set metrics through the bundled synthetic-domain classifier, and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tiva_bench.metrics.extractors import EXTRACTORS, get_extractor
from tiva_bench.metrics.extractors.synth_classifier import CHECKPOINT, checkpoint_metadata
from tiva_bench import synthetic
from tiva_bench.config import ScoreConfig
from tiva_bench.runner import score_folders

pytestmark = pytest.mark.skipif(not CHECKPOINT.exists(), reason="bundled classifier checkpoint missing")

QUALITY = ["w_dis", "fad_synth", "kl_synth", "is_synth", "class_acc"]


@pytest.fixture(scope="module")
def classifier():
    return get_extractor("synth_classifier", batch_size=32).load()


def test_classifier_accuracy_on_a_fresh_seed(classifier):
    """>= 95% on 100 clips rendered from a seed never used in training (data seed 1000 was)."""
    wavs, labels = [], []
    for i in range(100):
        scene = synthetic.make_scene(f"x{i}", synthetic.clip_seed(424242, "test", i))
        wavs.append(synthetic.render_audio(scene))
        labels.append(synthetic.CLASS_NAMES.index(scene.cls))
    logits = classifier(np.stack(wavs))["logits"]
    accuracy = float(np.mean(logits.argmax(1) == np.array(labels)))
    assert accuracy >= 0.95, accuracy
    assert checkpoint_metadata()["test_acc"] >= 0.95
    assert EXTRACTORS.get("synth_classifier").classes == synthetic.CLASS_NAMES


def test_front_end_matches_librosa(classifier):
    librosa = pytest.importorskip("librosa")
    import torch

    y = synthetic.render_audio(synthetic.make_scene("x", 5))
    ours = classifier.model.frontend(torch.from_numpy(y[None]))[0, 0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=320, n_mels=64, fmin=0, fmax=8000, power=2.0, center=True, pad_mode="reflect", htk=False)
    np.testing.assert_allclose(ours, np.log(np.maximum(mel, 1e-5)), atol=2e-3)


def test_outputs_do_not_depend_on_batching_or_order(classifier):
    wavs = np.stack([synthetic.render_audio(synthetic.make_scene("x", s)) for s in range(6)])
    together = classifier(wavs)["embedding"]
    alone = np.concatenate([classifier(w[None])["embedding"] for w in wavs])
    reversed_ = classifier(wavs[::-1])["embedding"][::-1]
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(together, reversed_, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def synth_pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    synthetic.generate(root / "synth", {"test": 12}, seed=3, workers=1)
    ref = root / "synth" / "test"
    names = sorted(p.stem for p in ref.glob("*.wav"))
    copies, shuffled = root / "copies", root / "shuffled"
    copies.mkdir()
    shuffled.mkdir()
    for i, name in enumerate(names):
        y, sr = sf.read(ref / f"{name}.wav", dtype="float32")
        sf.write(copies / f"{name}.wav", y, sr, subtype="FLOAT")
        other, _ = sf.read(ref / f"{names[(i + 1) % len(names)]}.wav", dtype="float32")
        sf.write(shuffled / f"{name}.wav", other, sr, subtype="FLOAT")
    return root, ref, copies, shuffled


def config(root, **kw):
    kw.setdefault("cache_dir", str(root / "cache"))
    cfg = ScoreConfig(metrics=list(QUALITY), workers=1, **kw)
    cfg.audio.window_s = synthetic.DURATION_S
    return cfg


def test_copies_score_perfectly_and_shuffling_hurts(synth_pairs):
    root, ref, copies, shuffled = synth_pairs
    same = score_folders(copies, ref, config(root))
    assert same.metrics["fad_synth"].value == pytest.approx(0.0, abs=1e-3)
    assert same.metrics["kl_synth"].value == pytest.approx(0.0, abs=1e-6)
    assert same.metrics["class_acc"].value == 1.0
    assert 1.0 <= same.metrics["is_synth"].value <= 5.0
    other = score_folders(shuffled, ref, config(root))
    assert other.metrics["kl_synth"].value > 0.5
    assert other.metrics["class_acc"].value < 0.8
    assert other.metrics["w_dis"].value > same.metrics["w_dis"].value
    assert "synth_classifier" in other.provenance["extractors"]
    assert any("samples for 128 dimensions" in w for w in other.warnings)  # 12 clips < 128 dims


def test_feature_cache_hits_misses_and_invalidation(synth_pairs):
    root, ref, copies, _ = synth_pairs
    cache_dir = root / "cache2"
    first = score_folders(copies, ref, config(root, cache_dir=str(cache_dir)))
    assert first.provenance["extractors"]["synth_classifier"]["computed"] == 24
    second = score_folders(copies, ref, config(root, cache_dir=str(cache_dir)))
    stats = second.provenance["extractors"]["synth_classifier"]
    assert stats["computed"] == 0 and stats["from_cache"] == 24
    assert second.metrics["fad_synth"].value == first.metrics["fad_synth"].value
    forced = score_folders(copies, ref, config(root, cache_dir=str(cache_dir), recompute=True))
    assert forced.provenance["extractors"]["synth_classifier"]["computed"] == 24
    assert forced.metrics["fad_synth"].value == pytest.approx(first.metrics["fad_synth"].value, abs=1e-9)  # evaluated from the rewritten entries
    cfg = config(root, cache_dir=str(cache_dir))
    cfg.audio.window_s = 8.0  # another window is another key
    assert score_folders(copies, ref, cfg).provenance["extractors"]["synth_classifier"]["computed"] == 24
    # damaged entries are recomputed, not trusted
    for entry in cache_dir.rglob("*.npz"):
        entry.write_bytes(b"garbage")
    again = score_folders(copies, ref, config(root, cache_dir=str(cache_dir)))
    assert again.provenance["extractors"]["synth_classifier"]["computed"] == 24
    assert again.metrics["fad_synth"].value == pytest.approx(first.metrics["fad_synth"].value, abs=1e-9)
