"""The runner and the ``tiva-bench`` command line, end to end on generated files."""

from __future__ import annotations

import csv
import json
import math

import pytest

from tiva_bench.config import ScoreConfig
from tiva_bench.runner import score_folders
from tests.procs import run_cli


def test_metrics_cli_scores_good_clips_and_lists_every_bad_one(media_pair_dirs, tmp_path):
    gen, ref = media_pair_dirs
    out = tmp_path / "out"
    proc = run_cli("metrics", gen, ref, "--out", out, "--workers", "2", check_rc=0)
    assert "W-dis" in proc.stdout and "skipped" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    scored = {c["clip"] for c in data["per_clip"]}
    assert scored == {"good0", "good1", "good2", "video0", "silent"}
    reasons = {s["clip"]: s["reason"] for s in data["skipped"]}
    assert "corrupt" in reasons and "cannot open" in reasons["corrupt"]
    assert "empty file" in reasons["empty"]
    assert "NaN/Inf" in reasons["nan"]
    assert "no audio stream" in reasons["mute"]
    assert "no reference named" in reasons["orphan_gen"]
    assert "no generated file named" in reasons["orphan_ref"]
    assert any(i["path"].endswith("notes.txt") and i["reason"] == "not a media file" for i in data["ignored"])
    silent = next(c for c in data["per_clip"] if c["clip"] == "silent")
    assert silent["gen_silent"] and silent["values"]["w_dis"] is None and "silent" in silent["undefined"]["w_dis"]
    assert silent["values"]["dtw_dis"] > 0
    video = next(c for c in data["per_clip"] if c["clip"] == "video0")
    assert video["ref"].endswith("video0.mp4") and video["ref_sr"] == 16000 and video["gen_padded_s"] == 0
    assert data["metrics"]["w_dis"]["n_undefined"] == 1 and data["metrics"]["w_dis"]["n"] == 4
    assert data["config"]["sync"]["hop_length"] == 1280 and data["provenance"]["versions"]["librosa"]
    with open(out / "per_clip.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["clip", "w_dis", "dtw_dis", "onset_acc", "onset_ap", "energy_l1"]
    by_clip = {r["clip"]: r for r in rows}
    assert by_clip["silent"]["w_dis"] == ""
    # the set value is the mean of the defined per-clip values
    values = [float(r["w_dis"]) for r in rows if r["w_dis"]]
    assert data["metrics"]["w_dis"]["value"] == pytest.approx(sum(values) / len(values))


def test_strict_nothing_to_score_and_usage_errors(media_pair_dirs, tmp_path):
    gen, ref = media_pair_dirs
    run_cli("metrics", gen, ref, "--strict", "-q", "--metrics", "w_dis", check_rc=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("metrics", empty, ref, check_rc=3)
    assert "nothing could be scored" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("metrics", gen, ref, "--metrics", "wdis", check_rc=2)
    assert "did you mean 'w_dis'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("metrics", tmp_path / "missing", ref, check_rc=2)
    assert "does not exist" in proc.stderr


def test_list_and_help():
    proc = run_cli("metrics", "--list", check_rc=0)
    for name in ("w_dis", "dtw_dis", "onset_acc", "onset_ap", "energy_l1"):
        assert name in proc.stdout
    assert "↓" in proc.stdout and "↑" in proc.stdout
    proc = run_cli("metrics", "--help", check_rc=0)
    assert "examples:" in proc.stdout and "exit codes" in proc.stdout


def test_worker_count_and_clip_order_do_not_change_values(media_pair_dirs):
    gen, ref = media_pair_dirs
    one = score_folders(gen, ref, ScoreConfig(workers=1))
    two = score_folders(gen, ref, ScoreConfig(workers=2))
    a = {c.clip: c.values for c in one.clips}
    b = {c.clip: c.values for c in two.clips}
    assert a.keys() == b.keys()
    for clip in a:
        for k, v in a[clip].items():
            assert (math.isnan(v) and math.isnan(b[clip][k])) or v == b[clip][k]


def test_report_golden_tables(tmp_path):
    """Tables from hand-written results: best bold, second underlined, direction-aware, NaN '--'."""
    def results(label, w, acc):
        return {"label": label, "metrics": {
            "w_dis": {"value": w, "display": "W-dis", "higher_is_better": False},
            "onset_acc": {"value": acc, "display": "Onset Acc", "higher_is_better": True}}}
    paths = []
    for label, w, acc in [("A", 3.85, 0.5), ("B", 4.21, None), ("C_x", 5.0, 0.7)]:
        p = tmp_path / f"{label}.json"
        p.write_text(json.dumps(results(label, w, acc)))
        paths.append(p)
    run_cli("report", *paths, "--out", tmp_path / "t", "-q", check_rc=0)
    md = (tmp_path / "t" / "summary.md").read_text()
    assert md == (
        "| System | W-dis ↓ | Onset Acc ↑ |\n"
        "|---|---:|---:|\n"
        "| A | **3.85** | <u>0.50</u> |\n"
        "| B | <u>4.21</u> | -- |\n"
        "| C_x | 5.00 | **0.70** |\n"
    )
    tex = (tmp_path / "t" / "summary.tex").read_text()
    assert r"Method & W-dis $\downarrow$ & Onset Acc $\uparrow$ \\" in tex
    assert r"A & \textbf{3.85} & \underline{0.50} \\" in tex
    assert r"C\_x & 5.00 & \textbf{0.70} \\" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    csv_text = (tmp_path / "t" / "summary.csv").read_text().splitlines()
    assert csv_text[0] == "system,w_dis,onset_acc" and csv_text[2] == "B,4.21,"
