"""Running a system's own code: a stand-in script that really writes audio, sleeps, fails and hangs."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import yaml

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench.baselines.base import RunContext
from tiva_bench.baselines.command import call_timing, load_systems_file, resolve_settings, run_batches
from tiva_bench.core.data import VideoItem
from tiva_bench.core.errors import ConfigError

STAND_IN = '''
import os, sys, time
import numpy as np, soundfile as sf
videos, out = sys.argv[1], sys.argv[2]
names = sorted(os.path.splitext(n)[0] for n in os.listdir(videos))
if any("hang" in n for n in names):
    time.sleep(600)
if any("fail" in n for n in names):
    print("CUDA out of memory (pretend)")
    sys.exit(3)
time.sleep(0.05 * len(names))
for n in names:
    t = np.arange(8 * 16000) / 16000
    name = n + "_gen.wav" if "odd" in n else n + ".wav"
    sf.write(os.path.join(out, name), (0.1 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 16000)
'''


@pytest.fixture
def checkout(tmp_path):
    folder = tmp_path / "system"
    folder.mkdir()
    (folder / "infer.py").write_text(STAND_IN)
    return folder


def _items(tmp_path, names):
    root = tmp_path / "videos"
    root.mkdir(exist_ok=True)
    items = []
    for n in names:
        p = root / f"{n}.mp4"
        p.write_bytes(b"not decoded by the stand-in")
        items.append(VideoItem(n, p))
    return items


def _systems(checkout, **extra):
    return {"difffoley": {"checkout": str(checkout), "python": sys.executable, "command": [["{python}", "infer.py", "{videos}", "{out}"]],
                          "batch_size": 2, "timeout_s": 3, **extra}}


def test_batches_write_audio_and_failures_and_hangs_skip_only_their_clips(tmp_path, checkout):
    items = _items(tmp_path, ["a", "b", "c", "fail1", "d", "hang1", "e"])
    settings = resolve_settings("difffoley", _systems(checkout))
    t0 = time.perf_counter()
    summary = run_batches(items, settings, tmp_path / "gen")
    assert time.perf_counter() - t0 < 60  # the hanging call was killed after its 3-s timeout
    written = sorted(p.stem for p in (tmp_path / "gen").glob("*.wav"))
    assert written == ["a", "b", "e"]  # batches [a b] [c fail1] [d hang1] [e]
    y, sr = sf.read(tmp_path / "gen" / "a.wav")
    assert sr == 16000 and y.size == 8 * 16000 and np.abs(y).max() > 0.05
    reasons = {s["clip"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {"c", "fail1", "d", "hang1"}
    assert "exit code 3: CUDA out of memory (pretend)" in reasons["c"] and "log:" in reasons["c"]
    assert "timed out after 3 s (killed)" in reasons["hang1"]
    timing = summary["timing"]
    assert timing["warmup_excluded"] and timing["batches_timed"] == 1 and timing["samples_timed"] == 1
    assert "model loading included" in timing["includes"]


def test_missing_outputs_are_skipped_with_the_system_name(tmp_path, checkout):
    items = _items(tmp_path, ["odd1", "ok"])
    summary = run_batches(items, resolve_settings("difffoley", _systems(checkout)), tmp_path / "gen")
    assert summary["generated"] == 1
    assert "difffoley wrote no file named 'odd1'" in summary["skipped"][0]["reason"]


def test_timing_excludes_the_first_call():
    calls = [{"clips": 2, "seconds": 10.0}, {"clips": 2, "seconds": 1.0}, {"clips": 1, "seconds": 0.8}]
    t = call_timing(calls, "cpu")
    assert t["seconds_per_sample"] == pytest.approx(1.8 / 3) and t["warmup_excluded"]
    single = call_timing(calls[:1], "cpu")
    assert single["seconds_per_sample"] == 5.0 and not single["warmup_excluded"]
    assert call_timing([], "cpu") is None


def test_plain_name_runs_the_system_when_set_up_and_fails_in_one_line_otherwise(tmp_path, checkout, monkeypatch):
    monkeypatch.delenv("TIVA_BENCH_DIFFFOLEY_CHECKOUT", raising=False)
    monkeypatch.delenv("TIVA_BENCH_SYSTEMS", raising=False)
    with pytest.raises(ConfigError, match="difffoley=DIR.*TIVA_BENCH_DIFFFOLEY_CHECKOUT"):
        get_adapter("difffoley")
    adapter = get_adapter("difffoley", RunContext(systems=_systems(checkout)))
    assert adapter.kind == "command" and adapter.info.guidance == "CFG+CG"
    summary = adapter.generate(_items(tmp_path, ["a", "b", "c"]), tmp_path / "gen", 0, RunContext(systems=_systems(checkout)))
    assert summary["generated"] == 3 and summary["kind"] == "command"
    # a checkout without a command: SpecVQGAN's repository has no video-in command line
    monkeypatch.setenv("TIVA_BENCH_SPECVQGAN_CHECKOUT", str(checkout))
    with pytest.raises(ConfigError, match="no command-line entry point"):
        get_adapter("specvqgan")
    with pytest.raises(ConfigError, match="argument list"):
        resolve_settings("x", {"x": {"checkout": str(checkout), "command": "python infer.py {out}"}})


def test_systems_file_from_the_environment(tmp_path, checkout, monkeypatch):
    path = tmp_path / "systems.yaml"
    path.write_text(yaml.safe_dump(_systems(checkout)))
    monkeypatch.setenv("TIVA_BENCH_SYSTEMS", str(path))
    assert load_systems_file()["difffoley"]["batch_size"] == 2
    path.write_text(yaml.safe_dump({"difffoley": {"checkout": str(checkout), "comand": ["x"]}}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_systems_file()
    with pytest.raises(ConfigError, match="does not exist"):
        load_systems_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not a folder"):
        resolve_settings("difffoley", {"difffoley": {"checkout": str(tmp_path / "gone"), "command": ["x"]}})


def test_run_times_a_configured_system_and_reports_why_clips_are_missing(tmp_path, checkout):
    from tiva_bench.config import ScoreConfig
    from tiva_bench.core.media_write import write_video
    from tiva_bench.run import run_models

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "fail1", "d"):
        write_video(data / f"{name}.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10, (rng.standard_normal(8 * 16000) * 0.1).astype(np.float32), 16000)
    systems = tmp_path / "systems.yaml"
    systems.write_text(yaml.safe_dump(_systems(checkout)))
    run_models(["difffoley"], tmp_path / "out", data, ScoreConfig(metrics=["w_dis"], workers=1), log=lambda m: None, systems=systems)
    res = json.loads((tmp_path / "out" / "results" / "difffoley" / "results.json").read_text())
    assert res["n_scored"] == 4  # batches in name order: [a b] [c d] [fail1]
    reasons = {s["clip"]: s["reason"] for s in res["skipped"]}
    assert reasons["fail1"].startswith("no generated file named 'fail1'") and "exit code 3" in reasons["fail1"]
    timing = res["provenance"]["generation"]["timing"]
    assert timing["warmup_excluded"] and timing["samples_timed"] == 2 and res["provenance"]["system"]["kind"] == "command"
    table1 = (tmp_path / "out" / "tables" / "table1.md").read_text()
    assert f"{timing['seconds_per_sample']:.2f}s" in table1 and "model loading included" in table1
    assert "4 of 5 clips scored (1 skipped)" in table1
