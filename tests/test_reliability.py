"""Bad settings, damaged state and concurrent runs: a clear line and exit 2, or a healed cache;
never a wrong number with exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import clicks
from tests.procs import children
from tiva_bench.cli import main
from tiva_bench.config import ScoreConfig, load_config
from tiva_bench.core.cache import FeatureCache
from tiva_bench.core.errors import ConfigError
from tiva_bench.extract import feature_cache

REPO = Path(__file__).resolve().parents[1]


def _pairs(root: Path, n: int = 3, seconds: float = 2.0) -> tuple[Path, Path]:
    gen, ref = root / "gen", root / "ref"
    gen.mkdir(parents=True)
    ref.mkdir(parents=True)
    for k in range(n):
        sf.write(ref / f"c{k}.wav", clicks([0.3, 1.1], seconds, seed=k), 16000)
        sf.write(gen / f"c{k}.wav", clicks([0.35, 1.2], seconds, seed=10 + k), 16000)
    return gen, ref


@pytest.mark.parametrize("setting", [
    "audio.window_s=1e-9", "audio.window_s=nan", "audio.window_s=inf", "onset.tolerance_s=-1", "sync.hop_length=0",
    "sync.n_fft=0", "sync.n_mels=0", "energy.hop_length=0", "sync.fastdtw_radius=-3", "onset.delta=nan",
    "workers=-1", "sync.hop_length=2.5", "metrics=,", "device=banana", "sync.dtw=approx",
])
def test_meaningless_settings_are_refused_before_any_work(setting):
    key = setting.split("=")[0]
    with pytest.raises(ConfigError) as err:
        load_config(None, [setting])
    assert key.split(".")[-1] in str(err.value) or key == "metrics" and "metric" in str(err.value)


def test_cli_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    gen, ref = _pairs(tmp_path)
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "afile").write_text("x")
    cases = [
        ["--window", "nan"], ["--window", "inf"], ["--config", str(tmp_path)], ["--config", str(tmp_path / "binary.yaml")],
        ["--device", "banana"], ["--metrics", ","], ["--out", str(tmp_path / "afile")], ["--out", str(tmp_path / "afile" / "sub")],
    ]
    if not _has_cuda():
        cases.append(["--device", "cuda"])
    for extra in cases:
        rc = main(["metrics", str(gen), str(ref), "-q", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, (extra, err)
        assert len(err) == 1 and err[0].startswith("tiva-bench: error:"), (extra, err)
    assert not list((tmp_path / "afile").parent.glob("results.json"))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ---- the feature cache ------------------------------------------------------------------------

@dataclass
class _Spec:
    name: str = "fake"
    version: str = "1"
    sample_rate: int = 16000
    frontend: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=lambda: {"embedding": 4})


class _Extractor:
    def __init__(self, weights_hash: str):
        self.spec = _Spec()
        self._hash = weights_hash

    def weights_digests(self):
        return {"w.safetensors": self._hash}


def test_cache_entries_are_keyed_by_the_weights(tmp_path):
    cfg = ScoreConfig(cache_dir=str(tmp_path))
    one, two = feature_cache(_Extractor("aaa"), cfg), feature_cache(_Extractor("bbb"), cfg)
    one.put("digest", {"embedding": np.ones(4, np.float32)})
    assert one.get("digest") is not None
    assert two.get("digest") is None, "features made with other weights must not be reused"
    assert feature_cache(_Extractor("aaa"), ScoreConfig(cache_dir=str(tmp_path), device="cpu")).get("digest") is not None


def _damage(kind: str, path: Path, other: Path) -> None:
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "flipped":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif kind == "copied":
        path.write_bytes(other.read_bytes())
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    elif kind in ("nan", "missing_key", "wrong_shape"):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        if kind == "nan":
            arrays["embedding"] = np.full_like(arrays["embedding"], np.nan)
        elif kind == "missing_key":
            del arrays["embedding"]
        else:
            arrays["embedding"] = np.ones((3, 3), np.float32)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)


@pytest.mark.parametrize("kind", ["truncated", "flipped", "copied", "folder", "nan", "missing_key", "wrong_shape"])
def test_damaged_cache_entries_are_reported_and_recomputed(tmp_path, kind):
    damaged = []
    cache = FeatureCache("x", {"v": 1}, tmp_path, expect={"embedding": (4,)}, on_damaged=lambda p, why: damaged.append(why))
    cache.put("a", {"embedding": np.arange(4, dtype=np.float32)})
    cache.put("b", {"embedding": np.ones(4, dtype=np.float32)})
    _damage(kind, cache.path_for("a"), cache.path_for("b"))
    assert cache.get("a") is None
    assert len(damaged) == 1
    cache.put("a", {"embedding": np.arange(4, dtype=np.float32)})  # recomputed and replaced
    np.testing.assert_array_equal(cache.get("a")["embedding"], np.arange(4, dtype=np.float32))


def test_a_damaged_entry_does_not_stop_a_run(tmp_path):
    """A real run: every cached synthetic-classifier entry damaged; the rerun heals and agrees."""
    gen, ref = _pairs(tmp_path, n=3)
    cache_dir = tmp_path / "cache"
    args = ["metrics", str(gen), str(ref), "-q", "--metrics", "fad_synth,kl_synth", "--workers", "1", "--cache-dir", str(cache_dir)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    entries = sorted((cache_dir / "features" / "synth_classifier").rglob("*.npz"))
    assert len(entries) == 6
    for k, entry in enumerate(entries):
        _damage(["truncated", "flipped", "folder", "nan", "copied", "missing_key"][k], entry, entries[(k + 1) % len(entries)])
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["metrics"] == b["metrics"]
    assert b["provenance"]["extractors"]["synth_classifier"]["computed"] == 6
    assert sum("damaged cache entry" in w for w in b["warnings"]) >= 5


# ---- concurrent and interrupted runs -----------------------------------------------------------

def test_a_second_run_on_the_same_out_is_refused(tmp_path):
    gen, ref = _pairs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tiva_bench.core.files import OutputLock\n"
                               f"lock = OutputLock({str(out)!r}).__enter__(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run([sys.executable, "-m", "tiva_bench", "metrics", str(gen), str(ref), "--out", str(out), "-q"],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
        assert done.returncode == 2
        assert "being written by another tiva-bench run" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (out / "results.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["metrics", str(gen), str(ref), "--out", str(out), "-q"]) == 0, "the lock dies with its holder"


def test_sigterm_stops_a_run_with_one_line(tmp_path):
    gen, ref = _pairs(tmp_path, n=40, seconds=8.0)
    proc = subprocess.Popen([sys.executable, "-m", "tiva_bench", "metrics", str(gen), str(ref), "--workers", "2", "--out", str(tmp_path / "o"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not children(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # signal once the worker processes are scoring, however fast the machine
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["tiva-bench: terminated; finished work is kept in the cache, rerun the same command to resume"]
