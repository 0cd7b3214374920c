"""Set metrics through the bundled synthetic-domain classifier, and the feature cache."""

from __future__ import annotations

import json
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
    recorded = other.provenance["extractors"]["synth_classifier"]
    assert (recorded["precision"], recorded["frontend_impl"]) == ("float32", "reference")  # what ran on the CPU
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


# ---- synthetic benchmark version 2: its own classifier and metrics ----

@pytest.fixture(scope="module")
def classifier_v2():
    return get_extractor("synth_classifier_v2", batch_size=32).load()


def _v2_clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    names = synthetic.class_names(2)
    wavs, labels = [], []
    for i in range(n):
        scene = synthetic.make_scene(f"x{i}", synthetic.clip_seed(seed, "test", i), version=2)
        wavs.append(synthetic.render_audio(scene))
        labels.append(names.index(scene.cls))
    return np.stack(wavs), np.array(labels)


def test_v2_classifier_tells_the_twins_apart(classifier_v2):
    """On 140 v2 clips from a seed never used in training: >= 90% overall, and within each twin
    pair (bell/chime, whistle/pipe: the same band energies) >= 85%, far above the 50% a
    classifier that only heard the coarse envelope would get."""
    from tiva_bench.synth_audio import TWINS

    names = synthetic.class_names(2)
    wavs, labels = _v2_clips(140, 424242)
    predicted = classifier_v2(wavs)["logits"].argmax(1)
    assert float(np.mean(predicted == labels)) >= 0.90
    for twin, original in TWINS.items():
        pair = np.isin(labels, [names.index(twin), names.index(original)])
        assert pair.sum() >= 20
        assert float(np.mean(predicted[pair] == labels[pair])) >= 0.85, (twin, original)
    assert EXTRACTORS.get("synth_classifier_v2").classes == names
    record = checkpoint_metadata(2)
    assert record["classes"] == list(names) and record["synthetic_version"] == 2 and record["test_acc"] >= 0.9


def test_v1_classifier_hears_the_twins_as_pitched_v1_classes(classifier):
    """Why v2 needs its own classifier: the v1 network, which knows only the five v1 classes,
    still names those right on v2 clips but files nearly every twin under a pitched v1 class
    (bell or whistle), so it cannot tell a twin from a bell or a whistle."""
    names = synthetic.class_names(2)
    wavs, labels = _v2_clips(80, 77)
    predicted = classifier(wavs)["logits"].argmax(1)
    v1 = labels < 5
    assert np.mean(predicted[v1] == labels[v1]) >= 0.9
    assert (~v1).sum() >= 10
    pitched = [names.index("bell"), names.index("whistle")]
    assert np.mean(np.isin(predicted[~v1], pitched)) >= 0.9


def test_synthetic_metric_names_follow_the_benchmark_version():
    from tiva_bench.metrics.registry import METRICS, synthetic_metrics_for

    columns = ["fad_synth", "kl_synth", "is_synth", "w_dis", "dtw_dis", "class_acc"]
    assert synthetic_metrics_for(columns, 1) == columns
    v2 = synthetic_metrics_for(columns, 2)
    assert v2 == ["fad_synth2", "kl_synth2", "is_synth2", "w_dis", "dtw_dis", "class_acc2"]
    assert {METRICS.get(n).extractor for n in v2 if n not in ("w_dis", "dtw_dis")} == {"synth_classifier_v2"}
    with pytest.raises(ValueError, match="1 or 2"):
        synthetic_metrics_for(columns, 3)


def test_v2_references_are_scored_with_the_v2_classifier(tmp_path, classifier_v2):
    """class_acc2 on copies of v2 references equals the v2 classifier's accuracy on them, computed
    here from the files' own labels; class_acc (v1) on the same folder says to use class_acc2."""
    synthetic.generate(tmp_path / "synth", {"test": 14}, seed=5, workers=1, version=2)
    ref = tmp_path / "synth" / "test"
    names = sorted(p.stem for p in ref.glob("*.wav"))
    labels = [json.loads((ref / f"{n}.json").read_text())["class"] for n in names]
    assert {"chime", "pipe"} & set(labels), labels  # the seed gives twins to score
    wavs = np.stack([sf.read(ref / f"{n}.wav", dtype="float32")[0] for n in names])
    expected = float(np.mean(classifier_v2(wavs)["logits"].argmax(1) == [synthetic.class_names(2).index(c) for c in labels]))
    cfg = ScoreConfig(metrics=["class_acc", "class_acc2", "fad_synth2"], workers=1, cache_dir=str(tmp_path / "cache"))
    cfg.audio.window_s = synthetic.DURATION_S
    results = score_folders(ref, ref, cfg)
    assert results.metrics["class_acc2"].value == pytest.approx(expected, abs=1e-12)
    assert results.metrics["fad_synth2"].value == pytest.approx(0.0, abs=1e-3)
    assert any("unknown to synth_classifier" in w and "class_acc2" in w for w in results.warnings), results.warnings
