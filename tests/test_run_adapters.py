"""Adapters and ``tiva-bench run`` with the sanity baselines (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench import synthetic
from tiva_bench.config import ScoreConfig
from tiva_bench.core.errors import ConfigError, UnknownNameError
from tiva_bench.run import run_models


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    synthetic.generate(root, {"test": 6}, seed=21, workers=1)
    return root / "test"


def test_unknown_and_folderless_systems_fail_clearly():
    with pytest.raises(UnknownNameError, match="did you mean 'tiva'"):
        get_adapter("tiav")
    with pytest.raises(ConfigError, match="difffoley=DIR"):
        get_adapter("difffoley")


def test_run_ranks_sanity_baselines_as_expected(test_split, tmp_path):
    cfg = ScoreConfig(metrics=["w_dis", "dtw_dis", "class_acc"], workers=1)
    cfg.audio.window_s = synthetic.DURATION_S
    table = run_models(["ground-truth", "shifted=1.0", "shuffled"], tmp_path / "out", test_split, cfg, log=lambda m: None)
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| System | W-dis ↓ | DTW-dis ↓ | Class Acc ↑")
    results = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "out" / "results").glob("*/results.json")}
    w = {k: v["metrics"]["w_dis"]["value"] for k, v in results.items()}
    assert w["ground-truth"] == 0.0 and w["ground-truth"] < w["shifted"] and w["ground-truth"] < w["shuffled"]
    assert results["ground-truth"]["metrics"]["class_acc"]["value"] == 1.0


def test_folder_adapter_copies_precomputed_outputs_and_lists_missing(test_split, tmp_path):
    outputs = tmp_path / "published"
    outputs.mkdir()
    for p in sorted(test_split.glob("*.wav"))[:4]:
        y, sr = sf.read(p, dtype="float32")
        sf.write(outputs / p.name, np.roll(y, 4000), sr)
    from tiva_bench.core.data import folder_items

    summary = get_adapter(f"difffoley={outputs}").generate(folder_items(test_split), tmp_path / "gen", 0)
    assert summary["generated"] == 4 and len(summary["skipped"]) == 2


def test_two_folder_systems_keep_their_own_outputs(test_split, tmp_path):
    a, b = tmp_path / "sysA", tmp_path / "sysB"
    for folder, lag in ((a, 0), (b, 16000)):
        folder.mkdir()
        for p in sorted(test_split.glob("*.wav")):
            y, sr = sf.read(p, dtype="float32")
            sf.write(folder / p.name, np.roll(y, lag), sr)
    cfg = ScoreConfig(metrics=["w_dis"], workers=1)
    run_models([f"folder={a}", f"folder={b}", f"folder={a}"], tmp_path / "out", test_split, cfg, log=lambda m: None)
    results = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "out" / "results").glob("*/results.json")}
    assert set(results) == {"sysA", "sysB", "sysA-2"}
    assert results["sysA"]["metrics"]["w_dis"]["value"] == 0.0 and results["sysB"]["metrics"]["w_dis"]["value"] > 1.0
    assert results["sysA-2"]["label"] == "sysA (2)"
