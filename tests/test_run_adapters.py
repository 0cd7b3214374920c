"""Adapters and ``tiva-bench run``: sanity baselines, precomputed outputs with the paper's
conventions checked against an independent sync computation, spec validation, Table 1 output."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import scipy.stats
import soundfile as sf

from tiva_bench.baselines.adapters import get_adapter
from tiva_bench import synthetic
from tiva_bench.config import ScoreConfig
from tiva_bench.core.errors import ConfigError, UnknownNameError
from tiva_bench.run import run_models
from tests.procs import run_cli


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    synthetic.generate(root, {"test": 6}, seed=21, workers=1)
    return root / "test"


def _results(out):
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "results").glob("*/results.json")}


def test_unknown_and_folderless_systems_fail_clearly(monkeypatch):
    monkeypatch.delenv("TIVA_BENCH_SYSTEMS", raising=False)
    with pytest.raises(UnknownNameError, match="did you mean 'tiva'"):
        get_adapter("tiav")
    for name in ("difffoley", "difffoley-cfg", "specvqgan", "diffsound", "im2wav"):
        monkeypatch.delenv(f"TIVA_BENCH_{name.upper().replace('-', '_')}_CHECKOUT", raising=False)
        with pytest.raises(ConfigError, match=f"{name}=DIR"):
            get_adapter(name)
    with pytest.raises(ConfigError, match="no public code"):
        get_adapter("foleygen")


def test_run_ranks_sanity_baselines_as_expected(test_split, tmp_path):
    cfg = ScoreConfig(metrics=["w_dis", "dtw_dis", "class_acc"], workers=1)
    cfg.audio.window_s = synthetic.DURATION_S
    table = run_models(["ground-truth", "shifted=1.0", "shuffled"], tmp_path / "out", test_split, cfg, log=lambda m: None)
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| System | W-dis ↓ | DTW-dis ↓ | Class Acc ↑")
    results = _results(tmp_path / "out")
    w = {k: v["metrics"]["w_dis"]["value"] for k, v in results.items()}
    assert w["ground-truth"] == 0.0 and w["ground-truth"] < w["shifted"] and w["ground-truth"] < w["shuffled"]
    assert results["ground-truth"]["metrics"]["class_acc"]["value"] == 1.0
    assert results["shifted"]["provenance"]["system"]["role"] == "reference"
    table1 = (tmp_path / "out" / "tables" / "table1.md").read_text()
    assert "*Reference*" in table1 and "**" not in table1.split("*Reference*")[1]  # reference rows never ranked
    assert all((tmp_path / "out" / "tables" / f"table1.{ext}").exists() for ext in ("csv", "md", "tex"))


def _odf(y, sr):
    y16 = librosa.resample(y.astype(np.float64), orig_sr=sr, target_sr=16000, res_type="soxr_hq") if sr != 16000 else y
    y16 = np.pad(y16[:8 * 16000], (0, max(0, 8 * 16000 - y16.size)))
    return librosa.onset.onset_strength(y=y16.astype(np.float32), sr=16000, hop_length=1280)


def _naive_dtw(a, b):
    cost = np.full((a.size + 1, b.size + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, a.size + 1):
        for j in range(1, b.size + 1):
            cost[i, j] = abs(a[i - 1] - b[j - 1]) + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    return cost[-1, -1] / a.size


def test_paper_conventions_give_the_sync_values_of_independent_code(test_split, tmp_path):
    """SpecVQGAN / DiffSound-V (10 s, 22.05 kHz), Diff-Foley (8 s, 16 kHz), IM2WAV (two 4.096-s
    halves): scored values equal a direct librosa + scipy + naive-DTW computation within 1%."""
    dirs = {k: tmp_path / k for k in ("svg", "ds", "df", "im")}
    for d in dirs.values():
        d.mkdir()
    expected = {"specvqgan": ([], []), "diffsound": ([], []), "difffoley": ([], []), "im2wav": ([], [])}
    for wav in sorted(test_split.glob("*.wav")):
        ref, sr = sf.read(wav, dtype="float32")
        ref_odf = _odf(ref, sr)
        gens = {}
        y22 = librosa.resample(ref, orig_sr=sr, target_sr=22050, res_type="soxr_hq")
        svg = np.concatenate([np.zeros(int(0.3 * 22050), np.float32), y22])[: 10 * 22050]
        svg[9 * 22050:9 * 22050 + 2000] = 0.9  # after 8 s: must not count
        gens["specvqgan"] = (dirs["svg"], svg, 22050)
        gens["diffsound"] = (dirs["ds"], np.roll(y22[: 10 * 22050], 4000), 22050)
        gens["difffoley"] = (dirs["df"], np.concatenate([np.zeros(3200, np.float32), ref])[: 8 * sr], sr)
        for name, (folder, y, rate) in gens.items():
            sf.write(folder / wav.name, y, rate, subtype="FLOAT")
        halves = [np.roll(ref, 800)[: 65536], np.roll(ref, 800)[4 * sr: 4 * sr + 65536]]
        sf.write(dirs["im"] / f"{wav.stem}_0_4000.wav", halves[0], sr, subtype="FLOAT")
        sf.write(dirs["im"] / f"{wav.stem}_4000_8000.wav", halves[1], sr, subtype="FLOAT")
        gens["im2wav"] = (None, np.concatenate([halves[0][: 4 * sr], halves[1][: 4 * sr]]), sr)
        for name, (_, y, rate) in gens.items():
            g = _odf(y, rate)
            positions = np.arange(g.size)
            expected[name][0].append(scipy.stats.wasserstein_distance(positions, positions, g, ref_odf))
            expected[name][1].append(_naive_dtw(g, ref_odf))
    cfg = ScoreConfig(metrics=["w_dis", "dtw_dis"], workers=1)
    run_models([f"specvqgan={dirs['svg']}", f"diffsound={dirs['ds']}", f"difffoley={dirs['df']}", f"im2wav={dirs['im']}"],
               tmp_path / "out", test_split, cfg, log=lambda m: None)
    results = _results(tmp_path / "out")
    for name, (w, d) in expected.items():
        got = results[name]["metrics"]
        assert got["w_dis"]["value"] == pytest.approx(np.mean(w), rel=0.01), name
        assert got["dtw_dis"]["value"] == pytest.approx(np.mean(d), rel=0.01), name
        assert results[name]["n_scored"] == 6
    assert {c["gen_sr"] for c in results["specvqgan"]["per_clip"]} == {22050}
    assert results["specvqgan"]["provenance"]["system"]["clip_s"] == 10.0
    assert results["im2wav"]["provenance"]["generation"]["joined"] == 6
    assert results["difffoley"]["provenance"]["system"]["guidance"] == "CFG+CG"
    assert results["difffoley"]["gen_dir"] == str(dirs["df"])  # scored in place
    table1 = (tmp_path / "out" / "tables" / "table1.md").read_text()
    assert "| SpecVQGAN | RGB + Flow | - |" in table1 and "| IM2WAV | CLIP | CFG |" in table1 and "| Diff-Foley | CAVP | CFG+CG |" in table1
    assert "*AutoRegressive*" in table1 and "*Diffusion*" in table1


def test_two_folder_systems_keep_their_own_outputs(test_split, tmp_path):
    a, b = tmp_path / "sysA", tmp_path / "sysB"
    for folder, lag in ((a, 0), (b, 16000)):
        folder.mkdir()
        for p in sorted(test_split.glob("*.wav")):
            y, sr = sf.read(p, dtype="float32")
            sf.write(folder / p.name, np.roll(y, lag), sr)
    cfg = ScoreConfig(metrics=["w_dis"], workers=1)
    run_models([f"folder={a}", f"folder={b}", f"folder={a}"], tmp_path / "out", test_split, cfg, log=lambda m: None)
    results = _results(tmp_path / "out")
    assert set(results) == {"sysA", "sysB", "sysA-2"}
    assert results["sysA"]["metrics"]["w_dis"]["value"] == 0.0 and results["sysB"]["metrics"]["w_dis"]["value"] > 1.0
    assert results["sysA-2"]["label"] == "sysA (2)"


def test_every_spec_is_validated_before_anything_is_written(test_split, tmp_path, monkeypatch):
    monkeypatch.delenv("TIVA_BENCH_TIVA_CHECKPOINT", raising=False)
    for models, data, match in ((["ground-truth", f"specvqgan={tmp_path / 'missing'}"], test_split, "does not exist"),
                                (["ground-truth", "tiva"], test_split, "tiva=PATH"),
                                (["tiva-tiny", "difffoley=" + str(tmp_path / "missing")], None, "does not exist")):
        with pytest.raises(ConfigError, match=match):
            run_models(models, tmp_path / "out", data, log=lambda m: None)
        assert not (tmp_path / "out").exists()


def test_run_cli_takes_config_set_device_and_pairing_options(test_split, tmp_path):
    outputs = tmp_path / "mine"
    outputs.mkdir()
    for p in sorted(test_split.glob("*.wav"))[:4]:
        y, sr = sf.read(p, dtype="float32")
        sf.write(outputs / f"{p.stem}_gen.wav", y, sr)
    config = tmp_path / "score.yaml"
    config.write_text("sync:\n  hop_length: 1280\n")
    out = tmp_path / "out"
    run_cli("run", "--models", f"folder={outputs},ground-truth", "--data", test_split, "--metrics", "w_dis", "--config", config,
            "--set", "audio.window_s=8", "--device", "cpu", "--workers", "1", "--gen-pattern", "(?P<key>.+)_gen", "--out", out, "-q", check_rc=0)
    results = _results(out)
    assert results["mine"]["n_scored"] == 4 and results["mine"]["metrics"]["w_dis"]["value"] == 0.0
    assert results["mine"]["config"]["audio"]["window_s"] == 8.0 and results["mine"]["config"]["pairing"]["gen_pattern"] == "(?P<key>.+)_gen"
    assert results["ground-truth"]["n_scored"] == 6  # the pattern applies to precomputed outputs only
    assert (out / "tables" / "table1.tex").exists() and (out / "tables" / "summary.md").exists()
    proc = run_cli("run", "--models", "ground-truth,difffoley", "--data", test_split, "--out", tmp_path / "bad", check_rc=2)
    assert "difffoley=DIR" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_run_on_a_folder_of_reference_audio(test_split, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for p in sorted(test_split.glob("*.wav")):
        refs.joinpath(p.name).write_bytes(p.read_bytes())
    run_models(["ground-truth", f"folder={refs}"], tmp_path / "out", refs, ScoreConfig(metrics=["w_dis"], workers=1), log=lambda m: None)
    results = _results(tmp_path / "out")
    assert results["ground-truth"]["n_scored"] == 6 and results["refs"]["metrics"]["w_dis"]["value"] == 0.0
    proc = run_cli("run", "--data", refs, "--out", tmp_path / "o2", check_rc=2)
    assert "needs --models" in proc.stderr
