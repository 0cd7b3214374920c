"""The figure module: spectrogram maths against librosa, image orientation, Figure 4 grids from
results files, per-clip distributions and the Figure 5 curves (drawn data equal to the input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import clicks
from tiva_bench.core.errors import ConfigError
from tiva_bench.core.results import ClipResult, Results, aggregate, load_results
from tiva_bench.reports import figures

SR = 16000


def _is_png(p: Path) -> bool:
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_pdf(p: Path) -> bool:
    return p.read_bytes()[:5] == b"%PDF-"


def test_mel_db_matches_librosa_power_to_db():
    import librosa

    y = clicks([0.5, 1.7, 2.2], 3.0, SR, seed=2)
    mine = figures.mel_db(y, SR)
    power = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=160, n_mels=64, fmax=8000.0)
    ref = librosa.power_to_db(power, ref=np.max, amin=1e-20, top_db=80.0)
    assert mine.shape == (64, 1 + y.size // 160)
    np.testing.assert_allclose(mine, ref, atol=1e-3)
    assert mine.max() == pytest.approx(0.0) and mine.min() >= -80.0
    assert np.all(figures.mel_db(np.zeros(SR, np.float32)) == -80.0)


def test_mel_png_puts_low_frequencies_at_the_bottom_and_time_left_to_right(tmp_path):
    from PIL import Image

    t = np.arange(2 * SR) / SR
    y = np.where(t < 1.0, 0.0, np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # a low tone in the second half
    path = figures.write_mel_png(figures.mel_db(y), tmp_path / "m.png", height=64)
    img = np.asarray(Image.open(path).convert("L"), np.float64)
    assert img.shape[0] == 64
    left, right = img[:, : img.shape[1] // 2 - 5], img[:, img.shape[1] // 2 + 5:]
    assert right[-16:].mean() > right[:16].mean() + 50  # bright at the bottom (low band)
    assert right[-16:].mean() > left[-16:].mean() + 50   # and only after the tone starts


def test_layout_resolution_figure_draws_the_given_curves(tmp_path):
    curves = {"[102,5]": {"train_loss": [1.0, 0.6, 0.4, 0.3], "val_l2": [0.9, 0.5], "step": [10, 20, 30, 40]},
              "[51,3]": {"train_loss": [1.2, 0.9, 0.8, 0.75], "val_l2": [1.0, 0.8], "step": [10, 20, 30, 40]}}
    fig = figures.layout_resolution_figure(curves)
    ax_loss, ax_val = fig.axes[:2]
    assert [line.get_label() for line in ax_loss.get_lines()] == ["[102,5]", "[51,3]"]
    np.testing.assert_array_equal(ax_loss.get_lines()[1].get_ydata(), curves["[51,3]"]["train_loss"])
    np.testing.assert_array_equal(ax_loss.get_lines()[0].get_xdata(), [10, 20, 30, 40])
    np.testing.assert_array_equal(ax_val.get_lines()[0].get_ydata(), [0.9, 0.5])
    np.testing.assert_array_equal(ax_val.get_lines()[0].get_xdata(), [10, 40])
    paths = figures.plot_layout_resolution(curves, tmp_path / "fig5")
    assert paths == [tmp_path / "fig5.png", tmp_path / "fig5.pdf"]
    assert _is_png(paths[0]) and _is_pdf(paths[1])
    with pytest.raises(ConfigError):
        figures.plot_layout_resolution({"[1,1]": {"train_loss": [1, 2], "step": [1]}}, tmp_path / "bad")


def test_a_second_series_shares_its_sizes_colour_with_its_own_line_style():
    one = {"train_loss": [1.0, 0.5], "val_l2": [0.9], "step": [1, 2]}
    fig = figures.layout_resolution_figure({"[102,5]": one, "[51,2]": one, "[102,5] Eq. 4 layer": one, "[51,2] Eq. 4 layer": one})
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["[102,5]"].get_color() == lines["[102,5] Eq. 4 layer"].get_color() != lines["[51,2]"].get_color()
    assert lines["[51,2]"].get_color() == lines["[51,2] Eq. 4 layer"].get_color()
    assert lines["[102,5]"].get_linestyle() == lines["[51,2]"].get_linestyle() != lines["[102,5] Eq. 4 layer"].get_linestyle()


def _results(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    for k in range(3):
        sf.write(ref_dir / f"c{k}.wav", clicks([0.3 + k * 0.2, 1.5], 2.0, SR, seed=k), SR)
    out = []
    for name, make, offset in (("sysa", lambda w: np.roll(w, 1600), 1.0), ("sysb", lambda w: 0.05 * rng.standard_normal(w.size), 5.0)):
        gen_dir = tmp_path / name
        gen_dir.mkdir()
        clips = []
        for k in range(3):
            w, _ = sf.read(ref_dir / f"c{k}.wav", dtype="float32")
            sf.write(gen_dir / f"c{k}.wav", make(w).astype(np.float32), SR)
            clips.append(ClipResult(f"c{k}", str(gen_dir / f"c{k}.wav"), str(ref_dir / f"c{k}.wav"), values={"w_dis": offset + k}))
        if name == "sysa":
            np.save(gen_dir / "c1.layout.npy", np.linspace(0, 1, 102 * 5).reshape(102, 5))
        res = Results(name, str(gen_dir), str(ref_dir), aggregate(clips, ["w_dis"]), clips, [], [], [], {"audio": {"window_s": 2.0}},
                      {"w_dis": {"display": "W-dis", "higher_is_better": False}})
        res.write(tmp_path / "results" / name)
        out.append(load_results(tmp_path / "results" / name))
    return out


def test_mel_grid_from_results(tmp_path):
    results = _results(tmp_path)
    paths = figures.mel_grid_from_results(results, ["c0", "c1"], tmp_path / "figures" / "fig4")
    assert _is_png(paths[0]) and _is_pdf(paths[1])
    with pytest.raises(ConfigError, match="no results file"):
        figures.mel_grid_from_results(results, ["nope"], tmp_path / "x")
    columns = [{"title": "a", "rows": [("reference", np.zeros((64, 10))), ("sysa", np.full((64, 10), -10.0))], "layout": np.ones((102, 5))},
               {"title": "b", "rows": [("reference", np.zeros((64, 10))), ("sysa", np.zeros((64, 10)))]}]
    fig = figures.mel_grid_figure(columns)
    assert len(fig.axes) == 2 * 3  # reference, one system, the layout row; two clips
    images = fig.axes[2].get_images()  # column 0, second row: sysa (axes are row-major)
    np.testing.assert_array_equal(images[0].get_array(), np.full((64, 10), -10.0))
    with pytest.raises(ConfigError):
        figures.mel_grid_figure([columns[0], {"title": "c", "rows": [("reference", np.zeros((64, 10)))]}])


def test_metric_distribution_figure_shows_every_clip(tmp_path):
    results = _results(tmp_path)
    fig = figures.metric_distributions_figure(results)
    ax = fig.axes[0]
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 3]
    xs = sorted(tuple(sorted(p[:, 0])) for p in points)
    assert xs == [(1.0, 2.0, 3.0), (5.0, 6.0, 7.0)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sysa", "sysb"]


def test_cli_figure_commands(tmp_path):
    results = _results(tmp_path)
    del results
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    curves = tmp_path / "curves.json"
    curves.write_text(json.dumps({"[102,5]": {"train_loss": [1, 0.5], "val_l2": [0.7], "step": [1, 2]}}))
    res_dirs = [str(tmp_path / "results" / "sysa"), str(tmp_path / "results" / "sysb")]
    for args, stem in ((["layout-resolution", str(curves)], "layout_resolution"), (["dist", *res_dirs, "--resamples", "200"], "dist"),
                       (["mels", *res_dirs, "--clips", "c1"], "mels")):
        proc = subprocess.run([sys.executable, "-m", "tiva_bench", "figure", *args, "--out", str(tmp_path / "o"), "-q"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert _is_png(tmp_path / "o" / "figures" / f"{stem}.png") and _is_pdf(tmp_path / "o" / "figures" / f"{stem}.pdf")
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", "figure", "mels", *res_dirs, "--clips", "zz", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "zz" in proc.stderr


def test_odf_curves_figure(tmp_path):
    ref, gen = np.array([0.0, 1.0, 0.0, 2.0]), np.array([0.0, 0.0, 1.0, 0.0])
    fig = figures.odf_curves_figure(ref, [("sys", gen)], hop_s=0.08, notes={"sys": "W-dis 1.00"})
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0.0, 0.08, 0.16, 0.24])
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), gen)
    assert ax.get_title(loc="left") == "sys  W-dis 1.00"
    paths = figures.plot_odf_curves(ref, [("sys", gen)], tmp_path / "odf", 0.08)
    assert _is_png(paths[0]) and _is_pdf(paths[1])
