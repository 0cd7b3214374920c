"""The synthetic benchmark checked against its own metadata by independent code."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tiva_bench import synthetic


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synthetic.generate(out, {"test": 24}, seed=11, workers=2)
    return out


def clip_metas(folder):
    return [(p, json.loads(p.read_text())) for p in sorted((folder / "test").glob("*.json"))]


def quiet_mask(meta, n, sr):
    quiet = np.ones(n, bool)
    for ev in meta["events"]:
        quiet[int(ev["sound_onset_s"] * sr):int(np.ceil(ev["sound_offset_s"] * sr))] = False
    return quiet


def test_every_sound_onset_is_a_peak_of_the_onset_strength_curve(synth_dir):
    librosa = pytest.importorskip("librosa")
    n_events = 0
    for path, meta in clip_metas(synth_dir):
        y, sr = sf.read(path.with_suffix(".wav"), dtype="float32")
        assert sr == 16000 and y.size == round(meta["duration_s"] * sr)
        odf = librosa.onset.onset_strength(y=y, sr=sr, hop_length=1280)
        quiet = quiet_mask(meta, y.size, sr)
        # ODF frames whose analysis windows (this frame and the previous) hear only silence
        quiet_frames = [f for f in range(len(odf)) if quiet[max(0, f * 1280 - 2304):f * 1280 + 1024].all()]
        background = odf[quiet_frames].max() if quiet_frames else 0.0
        for ev in meta["events"]:
            k = int(round(ev["sound_onset_s"] * sr / 1280))
            lo = max(0, k - 1)
            p = lo + int(np.argmax(odf[lo:k + 2]))  # within one hop
            assert odf[p] >= odf[max(0, p - 1)] and odf[p] >= odf[min(len(odf) - 1, p + 1)], (path.name, ev)
            assert odf[p] > 10 * background and odf[p] >= 0.05 * odf.max(), (path.name, ev)
            n_events += 1
    assert n_events > 24


def test_silence_where_no_source_sounds_and_a_silent_stretch_exists(synth_dir):
    for path, meta in clip_metas(synth_dir):
        y, sr = sf.read(path.with_suffix(".wav"), dtype="float32")
        quiet = quiet_mask(meta, y.size, sr)
        assert np.sqrt(np.mean(y[quiet] ** 2)) < 1e-4  # only the -100 dBFS floor (and 16-bit rounding)
        # the longest quiet run is at least the documented silent stretch
        runs, best = 0, 0
        for q in quiet:
            runs = runs + 1 if q else 0
            best = max(best, runs)
        assert best >= synthetic.MIN_SILENCE_S * sr


def test_lagged_events_sound_after_their_cue_and_others_at_it(synth_dir):
    kinds = set()
    scenes = [synthetic.make_scene("x", synthetic.clip_seed(0, "train", i)).metadata() for i in range(200)]
    for meta in [m for _, m in clip_metas(synth_dir)] + scenes:
        for ev in meta["events"]:
            kinds.add(ev["kind"])
            lag = ev["sound_onset_s"] - ev["visual_onset_s"]
            if ev["kind"] == "lagged":
                assert lag == pytest.approx(meta["thunder_lag_s"]) and ev["class"] == "thunder"
            else:
                assert lag == pytest.approx(0.0)
            if ev["kind"] == "sustained":  # the visible start and end bound the sound
                assert ev["sound_offset_s"] == pytest.approx(ev["visual_offset_s"])
    assert {"impact", "sustained", "lagged"} <= kinds
    assert any(len([o for o in m["objects"] if o["sounding"]]) > 1 for m in scenes)  # simultaneous sources
    assert any(m["silent_cues"] for m in scenes)  # visible distractors that make no sound


def test_frames_show_the_cue_at_the_visual_onset(synth_dir):
    import av

    checked = 0
    for path, meta in clip_metas(synth_dir):
        with av.open(str(path.with_suffix(".mp4"))) as container:
            stream = container.streams.video[0]
            assert float(stream.average_rate) == pytest.approx(10.0)
            frames = [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(stream)]
            assert container.streams.audio[0].rate == 16000
        cues = meta["events"] + meta["silent_cues"]
        for ev in cues:
            obj = meta["objects"][ev["source"]]
            k = int(round(ev["visual_onset_s"] * 10))
            half = int(obj["size"] * 0.7) + 1  # the lit object's half-size (rings are hollow)
            y0, y1, x0, x1 = max(0, obj["y"] - half), obj["y"] + half + 1, max(0, obj["x"] - half), obj["x"] + half + 1
            lit = frames[k][y0:y1, x0:x1].mean()
            # dim in the frame before, unless another cue of the same object was lit then
            before = [e for e in cues if e["source"] == ev["source"] and e["visual_onset_s"] <= ev["visual_onset_s"] - 0.1 < e["visual_offset_s"]]
            if k > 0 and not before:
                assert lit > 1.8 * frames[k - 1][y0:y1, x0:x1].mean(), (path.name, ev)
                checked += 1
    assert checked > 24


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path):
    a = synthetic.make_scene("x", synthetic.clip_seed(3, "test", 0))
    b = synthetic.make_scene("x", synthetic.clip_seed(3, "test", 0))
    c = synthetic.make_scene("x", synthetic.clip_seed(4, "test", 0))
    assert a.metadata() == b.metadata() and a.metadata() != c.metadata()
    np.testing.assert_array_equal(synthetic.render_audio(a), synthetic.render_audio(b))
    np.testing.assert_array_equal(synthetic.render_frames(a), synthetic.render_frames(b))
    assert len(synthetic.CLASS_NAMES) >= 4


def test_cli_writes_the_documented_layout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", "data", "synth", "--split", "train=2,val=1", "--out", str(tmp_path), "--seed", "5", "-q", "--duration", "4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("train/train_00000", "train/train_00001", "val/val_00000"):
        for ext in ("mp4", "wav", "json"):
            assert (tmp_path / f"{name}.{ext}").exists()
    meta = json.loads((tmp_path / "train/train_00000.json").read_text())
    assert set(meta) >= {"class", "events", "seed"} and meta["duration_s"] == 4
    assert set(meta["events"][0]) >= {"class", "visual_onset_s", "sound_onset_s", "sound_offset_s"}


# ---------------------------------------------------------------- version 2: twin classes

V1_GOLDEN = "2ce514763c38837e339cd68bea2357ca6e4c5aadc9a5ac95c80cc9efad2ccd4d"  # made by the released version-1 code


def test_version_1_stays_the_default_and_is_unchanged_clip_for_clip():
    import hashlib

    h = hashlib.sha256()
    for i in range(6):
        scene = synthetic.make_scene(f"c{i}", synthetic.clip_seed(0, "test", i))
        assert scene.version == 1 and scene.metadata()["version"] == 1
        h.update(synthetic.render_audio(scene).tobytes())
        meta = scene.metadata()
        meta.pop("version")
        h.update(json.dumps(meta, sort_keys=True).encode())
        h.update(synthetic.render_frames(scene).tobytes())
    assert h.hexdigest() == V1_GOLDEN
    v1 = {synthetic.make_scene("x", synthetic.clip_seed(1, "train", i)).cls for i in range(300)}
    assert v1 == set(synthetic.CLASS_NAMES)


def _coarse_layout(y: np.ndarray, bands: int = 5, steps: int = 16) -> np.ndarray:
    """The tiny preset's layout, recomputed with librosa: log-mel (32 bands, hop 640), min-max
    normalised, block-averaged to steps x bands."""
    librosa = pytest.importorskip("librosa")
    mel = np.log(np.maximum(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=640, n_mels=32, power=1.0), 1e-5)).T
    mel = (mel - mel.min()) / (mel.max() - mel.min())
    t_edges = np.linspace(0, mel.shape[0], steps + 1).astype(int)
    f_edges = np.linspace(0, mel.shape[1], bands + 1).astype(int)
    return np.array([[mel[t_edges[i]:t_edges[i + 1], f_edges[j]:f_edges[j + 1]].mean() for j in range(bands)] for i in range(steps)])


def _event(name: str, seed: int = 3) -> np.ndarray:
    from tiva_bench import synth_audio

    table = synth_audio.sound_classes(2)
    idx = [c.name for c in table].index(name)
    return synth_audio.render_clip([(idx, 0.2, 0.8, True, 0.8)], 1.2, seed=seed, classes=table)


def test_version_2_twins_share_the_coarse_layout_but_not_the_fine_structure():
    librosa = pytest.importorskip("librosa")
    layouts = {n: _coarse_layout(_event(n)) for n in ("bell", "chime", "whistle", "pipe", "drum", "crackle")}
    for twin, original in (("chime", "bell"), ("pipe", "whistle")):
        near = np.mean((layouts[twin] - layouts[original]) ** 2)
        others = [np.mean((layouts[twin] - layouts[o]) ** 2) for o in layouts if o not in (twin, original)]
        assert near < 0.2 * min(others), (twin, near, others)

    # fine structure: the strongest spectral peaks (8192-point spectrum of the sustained part) sit at
    # each class's own partials, and the 32-band mel spectrogram the tiny model generates tells
    # twins apart by several log units in some band
    def peaks(y, k):
        spec = np.abs(np.fft.rfft(y[4000:12000] * np.hanning(8000), 8192))
        freqs = np.fft.rfftfreq(8192, 1 / 16000)
        found = []
        for i in np.argsort(spec)[::-1]:
            if all(abs(freqs[i] - f) > 100 for f in found):
                found.append(freqs[i])
            if len(found) == k:
                return sorted(found)

    expected = {"bell": (660, 1320, 1980), "chime": (740, 1520, 2100), "whistle": (1760, 3520), "pipe": (1470, 2940)}
    for name, partials in expected.items():
        np.testing.assert_allclose(peaks(_event(name), len(partials)), partials, atol=4.0, err_msg=name)

    def mel32(y):
        return np.log(np.maximum(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=640, n_mels=32, power=1.0), 1e-5)).mean(axis=1)

    for twin, original in (("chime", "bell"), ("pipe", "whistle")):
        assert np.abs(mel32(_event(twin)) - mel32(_event(original))).max() > 3.0, twin


def test_version_2_scenes_draw_twins_shown_by_their_own_look(tmp_path):
    scenes = [synthetic.make_scene("x", synthetic.clip_seed(0, "train", i), version=2) for i in range(300)]
    assert {s.cls for s in scenes} == set(synthetic.class_names(2)) and all(s.metadata()["version"] == 2 for s in scenes)
    by_class = {}
    for s in scenes:
        by_class.setdefault(s.cls, s)
    for twin, original in (("chime", "bell"), ("pipe", "whistle")):
        looks = []
        for name in (twin, original):
            scene = by_class[name]
            obj = scene.objects[0]
            frames = synthetic.render_frames(scene)
            ev = next(e for e in scene.events if e.source == 0)
            k = int(round(ev.visual_onset_s * 10))
            patch = frames[k][max(0, obj.y - 6):obj.y + 7, max(0, obj.x - 6):obj.x + 7].reshape(-1, 3).astype(float)
            looks.append(patch.mean(axis=0))
        assert np.abs(looks[0] - looks[1]).max() > 40  # a different colour where the object is lit
    synthetic.generate(tmp_path, {"test": 1}, seed=0, workers=1, version=2)
    assert json.loads((tmp_path / "synthetic.json").read_text())["version"] == 2
    assert json.loads((tmp_path / "test" / "test_00000.json").read_text())["version"] == 2
    with pytest.raises(Exception, match="version 2"):
        synthetic.generate(tmp_path, {"test": 1}, seed=0, workers=1, version=1)
