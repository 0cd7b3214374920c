"""TiVA generation: warm-up left out of the timing, duplicate stems refused, safe writes, the adapter's rules."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from tiva_bench.baselines import tiva
from tiva_bench.baselines.adapters import get_adapter
from tiva_bench.baselines.base import RunContext
from tiva_bench.core.errors import ConfigError
from tiva_bench.core.media_write import write_video

WARMUP_S, PER_CLIP_S = 0.8, 0.02


class FakePipe:
    """Stands in for the TiVA pipeline: the first call is slow (as a real first call is)."""

    def __init__(self):
        self.cfg = SimpleNamespace(fps=10, sample_rate=16000, window_s=1.0, n_frames=10, use_layout=True)
        self.device = torch.device("cpu")
        self.calls = []
        self.codec = SimpleNamespace(decode_mel=lambda lat: lat, vocode=lambda mel, n: [np.full(n, 0.1, np.float32) for _ in range(mel.shape[0])])

    def encode_frames(self, frames):
        return torch.zeros(len(frames), 10, 3, 4), torch.zeros(len(frames), 10, 3, 2, 4)

    def inference_record(self):
        return {"name": "fp32-eager"}

    def __call__(self, cls, patch, *, generator, steps, **kw):
        self.calls.append((cls.shape[0], steps))
        time.sleep(WARMUP_S if len(self.calls) == 1 else PER_CLIP_S * cls.shape[0])
        return SimpleNamespace(latents=torch.zeros(cls.shape[0], 1), layout=torch.ones(cls.shape[0], 6, 2) if kw.get("return_layout") else None)


def _videos(root, names):
    for name in names:
        path = root / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, np.zeros((10, 32, 32, 3), np.uint8), 10)
    return root


@pytest.fixture
def fake(monkeypatch):
    pipe = FakePipe()
    monkeypatch.setattr(tiva, "load_pipeline", lambda *a, **k: pipe)
    return pipe


def test_timing_leaves_out_the_warm_up(tmp_path, fake):
    videos = _videos(tmp_path / "v", ["a", "b", "c"])
    summary = tiva.generate_folder(videos, tmp_path / "out", preset_name="tiva-tiny", batch_size=2, quiet=True)
    assert fake.calls == [(2, 2), (2, 25), (1, 25)]  # the warm-up: the first batch with two steps
    # with the warm-up counted, 3 clips would average over 0.26 s each
    assert summary["seconds_per_sample"] < WARMUP_S / 4
    assert summary["seconds_per_sample"] == pytest.approx(PER_CLIP_S, abs=0.05)
    record = json.loads((tmp_path / "out" / "timing.json").read_text())
    assert record["timing"]["warmup_excluded"] and record["timing"]["batches_timed"] == 2 and record["timing"]["device_name"] == "cpu"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a.wav", "b.wav", "c.wav"]
    layouts = sorted((tmp_path / "out").glob("*.layout.npy"))  # the layout each clip was generated with, for the report
    assert [p.name for p in layouts] == ["a.layout.npy", "b.layout.npy", "c.layout.npy"]
    assert np.load(layouts[0]).shape == (6, 2)


def test_duplicate_stems_are_refused_before_the_model_loads(tmp_path, monkeypatch):
    videos = _videos(tmp_path / "v", ["one/x", "two/x", "y"])
    monkeypatch.setattr(tiva, "load_pipeline", lambda *a, **k: pytest.fail("model loaded before the check"))
    with pytest.raises(ConfigError) as err:
        tiva.generate_folder(videos, tmp_path / "out", preset_name="tiva-tiny", quiet=True)
    message = str(err.value)
    assert "one/x.mp4" in message and "two/x.mp4" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_symbolic_link_in_out_is_replaced_never_followed(tmp_path, fake):
    videos = _videos(tmp_path / "v", ["a"])
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").symlink_to(outside)
    tiva.generate_folder(videos, out, preset_name="tiva-tiny", quiet=True)
    assert outside.read_text() == "keep me"
    assert not (out / "a.wav").is_symlink()
    y, sr = sf.read(out / "a.wav")
    assert sr == 16000 and y.size == 16000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "precious.txt", "v"]
    with pytest.raises(ConfigError):
        tiva._write_wav(out, "../escape.wav", np.zeros(10), 16000)


def test_tiva_needs_a_checkpoint_on_real_data(tmp_path, monkeypatch):
    monkeypatch.delenv(tiva.ENV_CHECKPOINT, raising=False)
    with pytest.raises(ConfigError, match="tiva=PATH") as err:
        get_adapter("tiva", RunContext(real_data=True))
    assert len(str(err.value).splitlines()) == 1
    assert get_adapter("tiva", RunContext(real_data=False)).label == "TiVA (tiny)"
    assert get_adapter("tiva-tiny", RunContext(real_data=True)).name == "tiva-tiny"  # named explicitly: allowed
    with pytest.raises(ConfigError, match="does not exist"):
        get_adapter(f"tiva={tmp_path / 'missing.safetensors'}")
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"x")
    adapter = get_adapter(f"tiva={ckpt}", RunContext(real_data=True))
    assert adapter.label == "TiVA" and adapter.info.clip_s == 10.24 and adapter.kind == "generated"
