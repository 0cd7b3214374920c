"""``tiva-bench ablate``: suite checking, plumbing of every bundled suite at tiny sizes, reuse of
finished rows, and the tables' numbers against independent recomputations."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tiva_bench import ablate
from tiva_bench.core.errors import ConfigError
from tiva_bench.reports import ablation as report

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "configs" / "suites"
TINY = {"unet_channels": [8, 8, 8], "unet_norm_groups": 4, "unet_attention_head_dim": 4, "predictor_dim": 16, "semantic_dim": 16}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _quick_suite(tmp: Path, name: str, **changes) -> Path:
    """A copy of a bundled suite at tiny sizes (a very small UNet and predictor, training batches
    of 2): the plumbing of the suite, fast."""
    data = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    data.setdefault("train", {})["batch_size"] = 2
    data["config"] = dict(TINY)
    data.update(changes)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- checking suites (no training)

@pytest.mark.parametrize("preset", ["tiva-tiny", "tiva-paper"])
def test_every_bundled_suite_loads_for_both_presets(preset):
    names = ablate.bundled_suites()
    assert {"table3", "table4", "table5", "fig5", "all"} <= set(names)
    everything = ablate.load_suite("all", preset)
    assert [s.name for s in everything] == ["table3", "table4", "table5", "fig5"]
    t5 = next(s for s in everything if s.name == "table5")
    assert [r.label for r in t5.rows] == ["TiVA", "w/o T", "w/o S", "w/o Joint"]
    assert t5.rows[1].cfg.use_layout is False and t5.rows[1].stages == ["generator"]
    assert t5.rows[3].stages == ["layout", "generator"]
    fig5 = next(s for s in everything if s.name == "fig5")
    assert any(r.cfg.layout_time == 102 and r.cfg.layout_bands == 5 for r in fig5.rows)  # the default is in the sweep


def _write(tmp_path, text: str) -> str:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return str(p)


BAD_SUITES = [
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {decoder_atention: sa}\n", "decoder_atention"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {decoder_attention: xx}\n", "decoder_attention"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {use_layout: 3}\n", "use_layout"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    stagez: all\n", "stagez"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    stages: [layout, joint, generator]\n", "stages"),
    ("kind: generate\ncolumns: [w_diss]\nrows:\n  - label: A\n", "w_diss"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    inference: {guidence: 0}\n", "guidence"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    train: {stepz: 3}\n", "stepz"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    train: {steps: {layuot: 3}}\n", "layuot"),
    ("kind: generate\ncolumns: [w_dis]\ncolums: [x]\nrows:\n  - label: A\n", "colums"),
    ("kind: layout\ncolumns: [layout_l2]\nrows:\n  - label: A\n    stages: [layout, generator]\n", "layout stage only"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n  - label: A\n", "share the folder name"),
    ("kind: generate\ncolumns: [w_dis]\ndescriptors: [x]\nrows:\n  - label: A\n    cells: {x: '${layout_hed}'}\n", "layout_hed"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    presets: [tiva-small]\n", "presets"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    pretrained: {layuot: x}\n", "layuot"),
    ("kind: resolution\ncolumns: [layout_l2]\nsweep: {tiva-tiny: [[26, 1]]}\ntemplate: {stages: [layout]}\n"
     "series:\n  - {name: B, slug: b, confg: {}, sweep: {tiva-tiny: [[26, 1]]}}\n", "confg"),
    ("kind: generate\ncolumns: [w_dis]\nseries: []\nrows:\n  - label: A\n", "series"),
    ("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {unet_channels: [8, 8]}\n", "unet_channels"),
]


@pytest.mark.parametrize("text,named", BAD_SUITES)
def test_a_bad_suite_fails_before_any_work_with_one_line_naming_the_key(tmp_path, text, named):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as err:
        ablate.run_suites(_write(tmp_path, text), ablate.AblateOptions(out=out, steps=1, n=1))
    message = str(err.value)
    assert named in message and "\n" not in message
    assert not out.exists()  # nothing written, nothing trained


def test_rows_apply_to_their_presets_and_cells_read_the_config():
    """table4 compares both layout-predictor output layers under each preset: the paper's five
    rows use the preset's default, one more row the other layer; the cell shows the config value."""
    for preset, default, other in (("tiva-tiny", "per-step", "concat"), ("tiva-paper", "concat", "per-step")):
        rows = ablate.load_suite("table4", preset)[0].rows
        assert [r.cfg.layout_head for r in rows] == [default] * 5 + [other]
        assert [r.cells["output layer"] for r in rows] == [default] * 5 + [other]
        assert rows[0].cells["CLIP features"] == "CLS^{11}"  # the paper's braces are left alone


def test_config_fields_are_read_from_the_dataclass(tmp_path, monkeypatch):
    """A field added to TiVAConfig is accepted without touching the ablate module."""
    import dataclasses

    from tiva_bench.models.tiva import config as tiva_config

    fields = {f.name for f in dataclasses.fields(tiva_config.TiVAConfig)}
    some = sorted(fields)[:5]
    suite = ablate.load_suite(_write(tmp_path, "kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {window: 2}\n"))[0]
    assert suite.rows[0].cfg.window == 2 and all(hasattr(suite.rows[0].cfg, f) for f in some)


def test_pretrained_fails_in_one_line_naming_a_row_without_a_shipped_checkpoint(tmp_path):
    suite = _write(tmp_path, "name: mine\nkind: generate\ncolumns: [w_dis]\nrows:\n  - label: TiVA\n    pretrained: tiva-tiny\n"
                             "  - label: Mine\n    config: {window: 2}\n")
    with pytest.raises(ConfigError) as err:
        ablate.run_suites(suite, ablate.AblateOptions(out=tmp_path / "o", pretrained=True, n=1))
    text = str(err.value)
    assert "'Mine'" in text and "ablate-mine-mine.safetensors" in text and "train_ablation_checkpoints.py" in text and "\n" not in text
    assert not (tmp_path / "o").exists()
    # the rows with shipped checkpoints resolve
    suite = ablate.load_suite("table5")[0]
    opts = ablate.AblateOptions(pretrained=True)
    assert ablate.pretrained_checkpoint(suite.rows[0], suite, opts).name == "tiva-tiny.safetensors"
    assert ablate.pretrained_checkpoint(suite.rows[1], suite, opts).name == "tiva-tiny-nolayout.safetensors"


def test_pretrained_refuses_to_call_v1_checkpoints_v2_ablations(tmp_path):
    """The shipped checkpoints were trained on synthetic v1: --pretrained with --synthetic-version 2
    fails before any data is written, and says how to get v2 results."""
    with pytest.raises(ConfigError) as err:
        ablate.run_suites("table5", ablate.AblateOptions(out=tmp_path / "o", pretrained=True, n=1, synthetic_version=2))
    text = str(err.value)
    assert "trained on synthetic benchmark v1" in text and "--synthetic-version 2" in text and "\n" not in text
    assert not (tmp_path / "o").exists()
    # a suite whose rows all train on use needs no shipped checkpoint: allowed
    suite = _write(tmp_path, "name: mine\nkind: layout\ncolumns: [layout_l2]\nrows:\n  - label: A\n    stages: [layout]\n    pretrained: train\n")
    ablate.check_pretrained(ablate.load_suite(suite), ablate.AblateOptions(out=tmp_path / "o2", pretrained=True, synthetic_version=2))


def test_every_bundled_row_has_a_shipped_checkpoint_or_trains_on_use(tmp_path):
    """``tiva-bench ablate all --pretrained`` passes its check before any work: each row's shipped
    file exists, fits the row's config, and holds the parts the row uses; the shipped ablation
    checkpoints stay under 15 MB together."""
    suites = ablate.load_suite("all")
    opts = ablate.AblateOptions(out=tmp_path / "o", pretrained=True)
    ablate.check_pretrained(suites, opts)
    from tiva_bench.models.tiva.model import TiVAModel

    for suite in suites:
        for row in suite.rows:
            if row.trains_on_use:
                continue
            model = TiVAModel.load(ablate.pretrained_checkpoint(row, suite, opts))
            needs = {"layout"} if suite.kind != "generate" else {"semantic", "generator"} | ({"layout"} if row.inference.get("layout") != "ground_truth" else set())
            assert not needs & set(model.untrained_parts), (suite.name, row.slug, model.untrained_parts)
    trained_on_use = [(s.name, r.slug) for s in suites for r in s.rows if r.trains_on_use]
    assert trained_on_use == [("table4", "cls-all-sa-wa-patch-eq4"), ("fig5", "m102-c5-eq4")]
    shipped = sum(p.stat().st_size for p in ablate.ASSETS.glob("ablate-*.safetensors"))
    assert shipped < 15e6


def test_training_keys_share_identical_stage_prefixes(tmp_path):
    suite = ablate.load_suite("table5")[0]
    opts = ablate.AblateOptions(out=tmp_path, steps=3)
    splits = ablate.Splits(tmp_path / "train", None, None, True, {})
    tiva, wo_t, wo_s, wo_joint = (ablate.training_chain(r, opts, splits) for r in suite.rows)
    assert [k for _, k, _ in tiva] == [k for _, k, _ in wo_s]
    assert [k for _, k, _ in wo_joint] == [k for _, k, _ in tiva][:2]
    assert not set(k for _, k, _ in wo_t) & set(k for _, k, _ in tiva)
    other_seed = ablate.training_chain(suite.rows[0], ablate.AblateOptions(out=tmp_path, steps=3, seed=1), splits)
    assert not set(k for _, k, _ in other_seed) & set(k for _, k, _ in tiva)


def test_training_keys_follow_the_files_of_the_training_data(tmp_path):
    """The same folder read again keeps its keys (an interrupted run resumes); a clip added, removed
    or rewritten with another size gives new keys (no stale checkpoint for other data)."""
    row = ablate.load_suite("table5")[0].rows[0]
    opts = ablate.AblateOptions(out=tmp_path, steps=3)
    train = tmp_path / "train"
    train.mkdir()
    for name in ("a.mp4", "a.wav", "b.mp4"):
        (train / name).write_bytes(b"x" * 10)
    keys = lambda: [k for _, k, _ in ablate.training_chain(row, opts, ablate.Splits(train, None, None, True, {}))]  # noqa: E731  (a suite run lists its folder once)
    first = keys()
    assert keys() == first
    (train / "c.mp4").write_bytes(b"y")
    added = keys()
    assert not set(added) & set(first)
    (train / "c.mp4").write_bytes(b"yy")
    assert not set(keys()) & set(added)
    (train / "c.mp4").unlink()
    assert keys() == first


# ---------------------------------------------------------------- tables

def test_labels_render_in_paper_notation_with_everything_else_escaped():
    assert report.label_latex("CLS^{4,8,11} + SA") == "CLS$^{4,8,11}$ + SA"
    assert report.label_latex("G w/ t_{a}") == "G w/ t$_{a}$"
    assert report.label_latex("50% & #1 $x {y} ~ \\") == r"50\% \& \#1 \$x \{y\} \textasciitilde{} \textbackslash{}"
    assert report.label_markdown("CLS^{11} | a*b") == r"CLS<sup>11</sup> \| a\*b"


def test_small_values_keep_three_significant_digits():
    rows = [report.TableRow("A", "a", {"layout_l2": 0.0088365, "w_dis": 10.98}), report.TableRow("B", "b", {"layout_l2": 0.0053069, "w_dis": 21.5})]
    info = {"layout_l2": {"higher_is_better": False}, "w_dis": {"higher_is_better": False}}
    text = report.render_markdown("T", rows, ["layout_l2", "w_dis"], info, [], "")
    assert "0.00884" in text and "**0.00531**" in text  # not 0.009 and 0.005
    assert "**10.980**" in text and "21.500" in text      # at least the default three decimals
    assert report.column_decimals([0.5, float("nan")], 3) == 3 and report.column_decimals([float("nan")], 3) == 3


def test_best_is_bold_and_second_underlined_per_direction(tmp_path):
    rows = [report.TableRow("A", "a", {"w_dis": 3.0, "class_acc": 0.5}), report.TableRow("B", "b", {"w_dis": 1.0, "class_acc": 0.9}),
            report.TableRow("C", "c", {"w_dis": 2.0, "class_acc": math.nan})]
    info = {"w_dis": {"higher_is_better": False}, "class_acc": {"higher_is_better": True}}
    paths = report.write_ablation_tables(tmp_path, "t", "T", rows, ["w_dis", "class_acc"], info, notes="n = 3 test clips; seed 0")
    md = paths["md"].read_text()
    assert "| A | 3.000 | <u>0.500</u> |" in md and "| B | **1.000** | **0.900** |" in md and "| C | <u>2.000</u> | -- |" in md
    assert "W. ↓" in md and "n = 3 test clips" in md
    tex = paths["tex"].read_text()
    assert r"\textbf{1.000}" in tex and r"\underline{2.000}" in tex and r"$\downarrow$" in tex and r"$\uparrow$" in tex
    assert _read_csv(paths["csv"])[1]["w_dis"] == "1.0"


# ---------------------------------------------------------------- every suite end to end, tiny

@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory):
    """Each bundled suite at tiny sizes: 2 training steps per stage, 2 test and 2 validation
    clips, 1 sampling step, training batches of 2; one OUT shared as ``all`` would."""
    tmp = tmp_path_factory.mktemp("ablate")
    out = tmp / "out"
    opts = ablate.AblateOptions(out=out, n=2, n_val=2, n_train=2, steps=2, sampling_steps=1, batch_size=2, workers=1)
    logs: list[str] = []
    written = {}
    for name in ("table4", "fig5", "table5", "table3"):
        extra = {"eval_every": 1} if name == "fig5" else {}
        if name == "fig5":
            extra["sweep"] = {"tiva-tiny": [[102, 5], [26, 1]]}
            extra["series"] = [{"name": "Eq. 4 layer", "slug": "eq4", "config": {"layout_head": "concat"}, "sweep": {"tiva-tiny": [[26, 1]]}}]
        if name == "table3":  # the ODF row runs the same code as the onset row (a one-band layout, lifted)
            rows = yaml.safe_load((SUITES / "table3.yaml").read_text())["rows"]
            extra["rows"] = [r for r in rows if r["slug"] != "g-odf"]
        written.update(ablate.run_suites(str(_quick_suite(tmp, name, **extra)), opts, logs.append))
    return out, opts, written, logs, tmp


def test_suites_write_their_tables_rows_and_figure(ablation_run):
    out, _, written, _, _ = ablation_run
    for name in ("table3", "table4", "table5", "fig5"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").is_file()
    assert (out / "figures" / "fig5.png").stat().st_size > 1000 and (out / "figures" / "fig5.pdf").is_file()
    t5 = _read_csv(out / "tables" / "table5.csv")
    assert [r["row"] for r in t5] == ["tiva", "wo-t", "wo-s", "wo-joint"]
    assert all(r["n_clips"] == "2" and r["seed"] == "0" for r in t5)
    for r in t5:
        assert sorted(p.name for p in (out / "gen" / r["row"]).iterdir()) == ["test_00000.wav", "test_00001.wav", "timing.json"]
        results = json.loads((out / "rows" / r["row"] / "results.json").read_text())
        assert Path(results["ref_dir"]) == out / "data" / "test-n2"
        assert float(r["w_dis"]) == pytest.approx(results["metrics"]["w_dis"]["value"])
    t3 = _read_csv(out / "tables" / "table3.csv")
    assert [r["label"] for r in t3] == ["G w/ Onset", "G w/ t_{a}"]
    assert r"G w/ t$_{a}$" in (out / "tables" / "table3.tex").read_text()
    curves = json.loads((out / "rows" / "m102-c5" / "curves.json").read_text())
    assert curves["step"] == [1.0, 2.0] and len(curves["val_l2"]) == 2 and all(np.isfinite(curves["train_loss"]))
    assert [r["label"] for r in _read_csv(out / "tables" / "fig5.csv")] == ["[102,5]", "[26,1]", "[26,1] Eq. 4 layer"]
    assert json.loads((out / "rows" / "m26-c1-eq4" / "curves.json").read_text())["step"] == [1.0, 2.0]


def test_table4_l2_equals_an_independent_recomputation_from_layouts_npz(ablation_run):
    out = ablation_run[0]
    rows = _read_csv(out / "tables" / "table4.csv")
    assert len(rows) == 6  # the paper's five and the full design with the other output layer
    assert [r["output layer"] for r in rows] == ["per-step"] * 5 + ["concat"]
    for r in rows:
        data = np.load(out / "rows" / r["row"] / "layouts.npz")
        assert data["t_v"].shape == data["t_a"].shape == (2, 102, 5) and list(data["clip"]) == ["val_00000", "val_00001"]
        per_clip = []
        for tv, ta in zip(data["t_v"].astype(np.float64), data["t_a"].astype(np.float64)):
            per_clip.append(np.linalg.norm((tv - ta).ravel()) ** 2 / tv.size)
        assert float(r["layout_l2"]) == pytest.approx(sum(per_clip) / len(per_clip), rel=1e-6)
        assert 0.0 <= data["t_a"].min() and data["t_a"].max() <= 1.0  # min-max normalised targets


def test_w_dis_column_matches_an_independent_recomputation(ablation_run):
    librosa = pytest.importorskip("librosa")
    from scipy.stats import wasserstein_distance

    out = ablation_run[0]
    row = _read_csv(out / "tables" / "table5.csv")[0]
    values = []
    for gen in sorted((out / "gen" / row["row"]).glob("*.wav")):
        y_g, sr_g = sf.read(gen, dtype="float32")
        y_r, sr_r = sf.read(out / "data" / "test-n2" / gen.name, dtype="float32")
        assert sr_g == sr_r == 16000
        n = int(round(10.24 * 16000))
        odf = [librosa.onset.onset_strength(y=np.pad(y, (0, max(0, n - y.size)))[:n], sr=16000, hop_length=1280) for y in (y_g, y_r)]
        frames = np.arange(len(odf[0]))
        values.append(wasserstein_distance(frames, frames, odf[0], odf[1]))
    assert float(row["w_dis"]) == pytest.approx(np.mean(values), rel=1e-2)


def test_a_rerun_reuses_finished_rows_and_trains_nothing(ablation_run):
    out, opts, _, _, tmp = ablation_run
    stamps = {p: p.stat().st_mtime_ns for p in (out / "rows").rglob("*")} | {p: p.stat().st_mtime_ns for p in (out / "train").rglob("*")}
    logs: list[str] = []
    ablate.run_suites(str(tmp / "table5.yaml"), opts, logs.append)
    assert sum("reusing" in m for m in logs) == 4 and not any("training stage" in m for m in logs)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_shared_components_trained_once(ablation_run):
    logs = ablation_run[3]
    trained = [m for m in logs if "training stage" in m]
    # table5: TiVA trains layout/generator/joint, w/o T trains its generator; w/o S and w/o Joint train nothing
    assert not any(m.strip().startswith(("w/o S", "w/o Joint")) for m in trained)
    assert sum(m.strip().startswith("TiVA:") for m in trained) <= 3


def test_wo_joint_equals_t_and_g_trained_separately(ablation_run):
    """w/o Joint's S and G (its generator stage, run after the layout stage) equal Table 3's
    "G w/ t_a" (the generator stage alone), weight for weight: the generator stage neither reads
    T nor draws random numbers that depend on it. This is what lets the shipped w/o Joint join T
    from Table 4's full row and S + G from Table 3's mel row."""
    import torch

    from tiva_bench.models.tiva.model import TiVAModel

    out = ablation_run[0]
    joint_skipped = TiVAModel.load(json.loads((out / "rows" / "wo-joint" / "row.json").read_text())["checkpoint"])
    g_only = TiVAModel.load(json.loads((out / "rows" / "g-mel" / "row.json").read_text())["checkpoint"])
    for part in ("semantic", "generator"):
        a, b = getattr(joint_skipped, part).state_dict(), getattr(g_only, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    # and T is what the layout stage alone gives (Table 4's full row trains the same stage)
    t_only = TiVAModel.load(json.loads((out / "rows" / "cls-all-sa-wa-patch" / "row.json").read_text())["checkpoint"])
    a, b = joint_skipped.layout.state_dict(), t_only.layout.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_ablate_on_the_same_out_is_refused(tmp_path):
    from tiva_bench.core.files import OutputLock

    out = tmp_path / "o"
    out.mkdir()
    with OutputLock(out):  # another run holds OUT
        proc = subprocess.run([sys.executable, "-m", "tiva_bench", "ablate", "table5", "--pretrained", "--out", str(out)],
                              capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "being written by another tiva-bench run" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []


def test_cli_unknown_key_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: generate\ncolumns: [w_dis]\nrows:\n  - label: A\n    config: {layout_kindd: mel}\n")
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", "ablate", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "layout_kindd" in proc.stderr and "did you mean 'layout_kind'" in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before --out was touched


# ---------------------------------------------------------------- shipped and composed checkpoints

def _tiny_model(seed: int, **changes):
    import dataclasses

    import torch

    from tiva_bench.models.tiva.config import preset
    from tiva_bench.models.tiva.model import TiVAModel

    torch.manual_seed(seed)
    return TiVAModel(dataclasses.replace(preset("tiva-tiny"), **{k: tuple(v) if isinstance(v, list) else v for k, v in {**TINY, **changes}.items()}))


def test_pretrained_parts_mapping_joins_separately_trained_parts(tmp_path, monkeypatch):
    """``pretrained: {layout: A, generator: B}`` gives T from A and S, G from B, bit for bit."""
    import torch

    a, b = _tiny_model(1), _tiny_model(2)
    a.save(tmp_path / "ablate-x-a.safetensors", parts=("layout",))
    b.save(tmp_path / "ablate-x-b.safetensors", parts=("semantic", "generator"))
    monkeypatch.setattr(ablate, "ASSETS", tmp_path)
    suite = ablate.load_suite(_write(tmp_path, "name: x\nkind: generate\ncolumns: [w_dis]\nconfig: " + json.dumps(TINY) + "\nrows:\n"
                                     "  - label: J\n    pretrained: {layout: ablate-x-a, generator: ablate-x-b}\n"))[0]
    path = ablate.pretrained_checkpoint(suite.rows[0], suite, ablate.AblateOptions(out=tmp_path / "o", pretrained=True))
    from tiva_bench.models.tiva.model import TiVAModel

    joined = TiVAModel.load(path)
    assert joined.untrained_parts == ()
    for name, source in (("layout", a), ("semantic", b), ("generator", b)):
        mine, theirs = getattr(joined, name).state_dict(), getattr(source, name).state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert path.parent == tmp_path / "o" / "train"
    # a part the named file does not hold is refused, naming it
    suite = ablate.load_suite(_write(tmp_path, "name: x\nkind: generate\ncolumns: [w_dis]\nconfig: " + json.dumps(TINY) + "\nrows:\n"
                                     "  - label: K\n    pretrained: {layout: ablate-x-b, generator: ablate-x-b}\n"))[0]
    with pytest.raises(ConfigError, match="no trained layout part"):
        ablate.pretrained_checkpoint(suite.rows[0], suite, ablate.AblateOptions(out=tmp_path / "o2", pretrained=True))


def test_a_row_marked_train_is_trained_under_pretrained(tmp_path):
    suite = _write(tmp_path, "name: mine\nkind: layout\ncolumns: [layout_l2]\ntrain: {batch_size: 2}\nconfig: " + json.dumps(TINY) + "\nrows:\n"
                             "  - label: T alone\n    stages: [layout]\n    pretrained: train\n")
    logs: list[str] = []
    opts = ablate.AblateOptions(out=tmp_path / "o", pretrained=True, n=1, n_val=2, n_train=2, steps=1, workers=1)
    ablate.run_suites(suite, opts, logs.append)
    assert any("no shipped checkpoint" in m for m in logs) and any("training stage layout" in m for m in logs)
    assert (tmp_path / "o" / "rows" / "t-alone" / "layouts.npz").is_file()
    assert "rows without one trained here" in (tmp_path / "o" / "tables" / "mine.md").read_text()


@pytest.mark.slow
def test_under_torchrun_ranks_train_together_and_rank_0_alone_writes(tmp_path):
    """Two CPU ranks over gloo: both train each row (data-parallel), rank 0 generates, scores and
    writes the table; rank 1 exits 0 without printing a table."""
    import os

    suite = _quick_suite(tmp_path, "table5", rows=[{"label": "TiVA", "slug": "tiva", "stages": ["layout", "generator"]}])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TIVA_BENCH_DIST_TIMEOUT_S": "300"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tiva_bench", "ablate",
                           str(suite), "--out", str(out), "--steps", "2", "--n-test", "2", "--n-train", "4", "--sampling-steps", "1", "--workers", "1"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("table5: ") == 1  # one rank wrote and reported the table
    rows = _read_csv(out / "tables" / "table5.csv")
    assert [r["row"] for r in rows] == ["tiva"] and rows[0]["n_clips"] == "2"
    assert sorted(p.name for p in (out / "gen" / "tiva").glob("*.wav")) == ["test_00000.wav", "test_00001.wav"]
    sums = sorted(out.glob("train/*/rank*_param_sum.txt"))
    assert len(sums) == 4  # two stages x two ranks, and the ranks ended each stage with the same weights
    for stage in {p.parent for p in sums}:
        assert (stage / "rank0_param_sum.txt").read_text() == (stage / "rank1_param_sum.txt").read_text()


@pytest.mark.slow
def test_paper_preset_plumbing_on_a_cpu_with_tiny_shapes(tmp_path, monkeypatch):
    """``--preset tiva-paper --data DIR``: the paper's CLIP frame encoder and AudioLDM2 codec (random
    weights here: plumbing only, no number from this run means anything) with a tiny UNet and
    predictor, train/val/test folders given by --data; every suite kind runs and writes its table."""
    from tiva_bench import synthetic, train
    from tiva_bench.models.tiva import pipeline

    for module in (train, ablate, pipeline):
        real_encoder, real_codec = module.frame_encoder_for, module.build_codec
        monkeypatch.setattr(module, "frame_encoder_for", lambda cfg, *a, _f=real_encoder, **k: _f(cfg, random_init=True))
        monkeypatch.setattr(module, "build_codec", lambda cfg, *a, _f=real_codec, **k: _f(cfg, random_init=True))
    data = tmp_path / "data"
    synthetic.generate(data, {"train": 2, "val": 2, "test": 2}, seed=5)
    tiny_paper = {"unet_channels": [8, 8, 8, 8], "unet_norm_groups": 4, "unet_attention_head_dim": 4, "predictor_dim": 16, "semantic_dim": 16}
    opts = ablate.AblateOptions(out=tmp_path / "out", preset="tiva-paper", data=data, n=2, n_val=2, steps=1, sampling_steps=1, batch_size=2, workers=1)
    suites = {
        "t5": {"name": "t5", "kind": "generate", "columns": {"synthetic": ["w_dis", "dtw_dis"], "real": ["w_dis"]}, "config": tiny_paper,
               "train": {"batch_size": 2}, "rows": [{"label": "TiVA", "slug": "tiva", "stages": "all"},
                                                     {"label": "G w/ t_{a}", "slug": "g-mel", "stages": ["generator"], "inference": {"layout": "ground_truth"}}]},
        "t4": {"name": "t4", "kind": "layout", "columns": ["layout_l2"], "config": tiny_paper, "train": {"batch_size": 2},
               "rows": [{"label": "CLS^{4,8,11} + SA+WA + Patch^{4,8,11}", "slug": "full", "stages": ["layout"]}]},
    }
    for name, suite in suites.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(suite, sort_keys=False))
        ablate.run_suites(str(path), opts, lambda m: None)
    out = tmp_path / "out"
    rows = _read_csv(out / "tables" / "t5.csv")
    assert [r["row"] for r in rows] == ["tiva", "g-mel"] and all(r["preset"] == "tiva-paper" for r in rows)
    for r in rows:
        wavs = sorted((out / "gen" / r["row"]).glob("*.wav"))
        assert len(wavs) == 2
        y, sr = sf.read(wavs[0])
        assert sr == 16000 and y.shape[0] == int(round(10.24 * 16000))
    layouts = np.load(out / "rows" / "full" / "layouts.npz")
    assert layouts["t_v"].shape == (2, 102, 5)  # the paper's M x C
