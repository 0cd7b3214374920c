"""The static HTML report: folder layout, data files, safe relative media paths, pagination, curves
that match the audio, and a real headless Chromium opening it (no console errors, every player and
image present, a screenshot saved)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import clicks
from tiva_bench.core.media_write import write_video
from tiva_bench.core.results import ClipResult, Results, SetValue, aggregate, load_results
from tiva_bench.reports.html import safe_name, write_html_report

SR = 16000
DUR = 4.0
CLIPS = ["clip 01", "clip#02", "clïp/03", "clip_04", "clip_05"]  # spaces, '#', non-ASCII, a sub-folder


def _make_system(root: Path, name: str, label: str, make, ref_paths: dict, rng, skip: set = frozenset(), layout: bool = False) -> Path:
    gen_dir = root / "gen" / name
    clips, skipped = [], []
    for k, key in enumerate(CLIPS):
        if key in skip:
            skipped.append({"clip": key, "reason": "generated file is empty (0 bytes)", "path": str(gen_dir / f"{key}.wav")})
            continue
        ref_wav, _ = sf.read(ref_paths[key], dtype="float32")
        path = gen_dir / f"{key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, make(ref_wav, k), SR, subtype="FLOAT")
        if layout:
            np.save(path.with_name(path.stem + ".layout.npy"), rng.random((102, 5)))
        clips.append(ClipResult(clip=key, gen=str(path), ref=str(ref_paths[key]), gen_sr=SR, ref_sr=SR,
                                values={"w_dis": float(rng.gamma(2.0, 1.0 + k)), "dtw_dis": float(rng.random()), "energy_l1": float(rng.random())}))
    metrics = aggregate(clips, ["w_dis", "dtw_dis", "energy_l1"])
    metrics["fad_synth"] = SetValue(value=1.5 + rng.random(), std=float("nan"), n=len(clips), n_undefined=0)
    info = {"w_dis": {"display": "W-dis", "higher_is_better": False, "level": "clip", "table_scale": 1.0},
            "dtw_dis": {"display": "DTW-dis", "higher_is_better": False, "level": "clip", "table_scale": 1.0},
            "energy_l1": {"display": "Energy L1", "higher_is_better": False, "level": "clip", "table_scale": 1.0},
            "fad_synth": {"display": "FAD syn.", "higher_is_better": False, "level": "set", "table_scale": 1.0}}
    res = Results(label=label, gen_dir=str(gen_dir), ref_dir=str(root / "ref"), metrics=metrics, clips=clips, skipped=skipped, ignored=[],
                  warnings=["a warning with <b>markup</b> that must stay text"], config={"audio": {"window_s": DUR}, "sync": {"sample_rate": SR, "hop_length": 1280}},
                  metric_info=info, provenance={"git": "0123abcd", "versions": {"numpy": np.__version__}, "command": "tiva-bench metrics gen ref"})
    out = root / "results" / name
    res.write(out)
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Five clips (one with a video), four systems (one with layouts, one skipping a clip)."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    ref_paths = {}
    for k, key in enumerate(CLIPS):
        times = sorted(rng.uniform(0.2, DUR - 0.5, 4))
        p = root / "ref" / f"{key}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, clicks(times, DUR, SR, seed=k), SR)
        ref_paths[key] = p
    frames = np.zeros((int(DUR * 5), 48, 64, 3), np.uint8)
    frames[:, 10:30, 20:40] = (np.arange(frames.shape[0]) * 12 % 255)[:, None, None, None]
    write_video(root / "ref" / "clip_04.mp4", frames, 5.0)
    shift = int(0.3 * SR)
    dirs = [
        _make_system(root, "tiva", "TiVA <tiny>", lambda w, k: np.roll(w, 800), ref_paths, rng, layout=True),
        _make_system(root, "other", "Other & co", lambda w, k: np.roll(w, shift), ref_paths, rng, skip={"clip_05"}),
        _make_system(root, "noise", "Noise", lambda w, k: (0.1 * np.random.default_rng(k).standard_normal(w.size)).astype(np.float32), ref_paths, rng),
        _make_system(root, "gt", "Ground truth", lambda w, k: w, ref_paths, rng),
    ]
    index = write_html_report(dirs, root / "out", n_resamples=2000, page_size=3)
    return {"root": root, "dirs": dirs, "index": index, "report": index.parent}


def _data(path: Path, var: str):
    text = path.read_text(encoding="utf-8")
    assert text.startswith(var + " = ") and text.endswith(";\n")
    return json.loads(text[len(var) + 3:-2])


def _page(report: Path, p: int):
    return _data(report / "data" / f"clips-{p:04d}.js", f"window.TIVA_PAGES[{p}]")


def test_report_folder_layout_and_summary(bench):
    report = bench["report"]
    assert bench["index"] == bench["root"] / "out" / "report" / "index.html"
    html = bench["index"].read_text(encoding="utf-8")
    assert 'src="data/report.js"' in html and 'href="assets/report.css"' in html
    data = _data(report / "data" / "report.js", "window.TIVA_REPORT")
    assert [s["label"] for s in data["systems"]] == ["TiVA <tiny>", "Other & co", "Noise", "Ground truth"]
    assert [s["ranked"] for s in data["systems"]] == [True, True, False, False]
    res = load_results(bench["dirs"][0])
    values = [c["values"]["w_dis"] for c in res["per_clip"]]
    cell = data["summary"]["w_dis"]["TiVA <tiny>"]
    assert cell["value"] == pytest.approx(np.mean(values))
    assert min(values) <= cell["ci_low"] < cell["value"] < cell["ci_high"] <= max(values)
    # exactly one best among the ranked systems, unranked rows carry no mark
    marks = data["summary"]["w_dis"]
    assert sum(marks[s]["best"] for s in ("TiVA <tiny>", "Other & co")) == 1
    assert not marks["Noise"]["best"] and not marks["Ground truth"]["same_as_best"]
    assert data["summary"]["fad_synth"]["Noise"]["ci_low"] is None  # set metric: no per-clip interval invented
    assert {"system": "Other & co", "clip": "clip_05", "reason": "generated file is empty (0 bytes)"} in data["skipped"]
    assert data["systems"][0]["provenance"]["git"] == "0123abcd"
    assert (report / "summary_stats.csv").read_text().startswith("system,metric,value,ci_low,ci_high")


def test_pagination_and_every_media_path_is_relative_safe_and_present(bench):
    report = bench["report"]
    data = _data(report / "data" / "report.js", "window.TIVA_REPORT")
    assert data["n_pages"] == 2 and len(data["clips"]) == 5
    pages = [_page(report, 0), _page(report, 1)]
    assert [len(p) for p in pages] == [3, 2]
    assert sorted(c["key"] for p in pages for c in p) == sorted(CLIPS)
    n_audio = 0
    for clip in (c for p in pages for c in p):
        urls = [clip["ref"]["audio"], clip["ref"]["mel"], clip["frames"], clip["layout"]]
        urls += [r[k] for r in clip["rows"] for k in ("audio", "mel")]
        for url in filter(None, urls):
            assert not url.startswith("/") and "://" not in url and "\\" not in url
            assert re.fullmatch(r"[A-Za-z0-9._~%/-]+", url), url  # percent-encoded
            assert (report / unquote(url)).is_file(), url
        n_audio += sum(1 for u in [clip["ref"]["audio"]] + [r["audio"] for r in clip["rows"]] if u)
        assert [r["label"] for r in clip["rows"]] == [s["label"] for s in data["systems"]]
        assert clip["layout_system"] == "TiVA <tiny>"
    assert n_audio == 5 * 5 - 1  # the skipped clip has no player
    for f in (report / "media").rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", f.name), f.name
    assert next(c for p in pages for c in p if c["key"] == "clip_04")["frames"] is not None
    assert next(c for p in pages for c in p if c["key"] == "clip 01")["frames"] is None


def test_onset_curves_match_the_audio(bench):
    import librosa

    clip = _page(bench["report"], 0)[0]
    ref_path = bench["root"] / "ref" / f"{clip['key']}.wav"
    y, sr = sf.read(ref_path, dtype="float32")
    expected = librosa.onset.onset_strength(y=y, sr=sr, hop_length=1280)
    np.testing.assert_allclose(clip["ref_odf"], expected, atol=1e-3, rtol=1e-3)
    tiva = clip["rows"][0]
    y_gen, _ = sf.read(bench["root"] / "gen" / "tiva" / f"{clip['key']}.wav", dtype="float32")
    np.testing.assert_allclose(tiva["odf"], librosa.onset.onset_strength(y=y_gen, sr=sr, hop_length=1280), atol=1e-3, rtol=1e-3)
    row = next(c for c in load_results(bench["dirs"][0])["per_clip"] if c["clip"] == clip["key"])
    assert tiva["w_dis"] == pytest.approx(row["values"]["w_dis"])


def test_spectrogram_images_follow_the_audio(bench):
    from PIL import Image

    clip = next(c for c in _page(bench["report"], 0) if c["key"] == "clip 01")
    ref = np.asarray(Image.open(bench["report"] / unquote(clip["ref"]["mel"])).convert("L"), np.float64)
    gt = np.asarray(Image.open(bench["report"] / unquote(clip["rows"][3]["mel"])).convert("L"), np.float64)
    noise = np.asarray(Image.open(bench["report"] / unquote(clip["rows"][2]["mel"])).convert("L"), np.float64)
    assert np.array_equal(ref, gt)  # ground truth is the reference
    assert ref.std(axis=0).mean() > 2 * noise.std(axis=0).mean() or noise.mean() > ref.mean() + 20  # bursts vs flat noise
    # time runs left to right: the first burst's column is where the audio's first onset is
    y, _ = sf.read(bench["root"] / "ref" / "clip 01.wav", dtype="float32")
    first_onset_s = np.argmax(np.abs(y) > 0.05) / SR
    energy = ref.mean(axis=0)
    first_col = np.argmax(energy > energy.min() + 0.5 * (energy.max() - energy.min()))
    assert abs(first_col / ref.shape[1] * DUR - first_onset_s) < 0.15


def test_safe_name():
    assert safe_name("clip_04") == "clip_04"
    names = ["a b", "a_b", "a/b", "ü", "../x", "x" * 200]
    slugs = [safe_name(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    for s in slugs:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", s) and len(s) <= 70 and not s.startswith(".")


def test_old_results_without_intervals_and_tables_only(tmp_path, bench):
    data = load_results(bench["dirs"][1])
    for m in data["metrics"].values():
        m.pop("ci_low", None)
    index = write_html_report([data], tmp_path, n_resamples=500, media=False)
    page = _page(index.parent, 0)
    assert all(c["rows"] == [] for c in page)
    summary = _data(index.parent / "data" / "report.js", "window.TIVA_REPORT")["summary"]
    assert summary["w_dis"]["Other & co"]["ci_low"] is not None
    assert not (index.parent / "media").exists() or not any((index.parent / "media").iterdir())


def test_cli_report_html(tmp_path, bench):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "tiva_bench", "report", *map(str, bench["dirs"][:2]), "--out", str(out), "--html", "--no-media",
                           "--resamples", "500", "--latex-intervals", "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report" / "index.html").is_file()
    stats_csv = (out / "summary_stats.csv").read_text()
    assert "w_dis" in stats_csv and "same_as_best" in stats_csv
    tex = (out / "summary_ci.tex").read_text()
    assert r"$_{\pm" in tex and r"\textbf{" in tex


# ---------------------------------------------------------------- real browser

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _ensure_chromium() -> tuple[str | None, str]:
    """The browser, installing Debian's ``chromium`` when missing and possible; else (None, why)."""
    found = _chromium()
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, "no chromium and no apt-get to install it (install Chromium and put it on PATH)"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return None, "no chromium, and installing it needs root: sudo apt-get install -y chromium"
    try:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"chromium could not be installed (apt-get install -y chromium: {exc})"
    return _chromium(), "installed just now"


def _headless(browser: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--mute-audio",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--allow-file-access-from-files"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)


def test_report_in_headless_chromium(bench, tmp_path):
    browser, why = _ensure_chromium()
    if browser is None:
        print(f"SKIP REASON: {why}")
        pytest.skip(why)
    url = bench["index"].resolve().as_uri() + "?check"
    proc = _headless(browser, "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    errors = [line for line in console if re.search(r"error|uncaught|failed", line, re.IGNORECASE)]
    assert not errors, "\n".join(errors)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body
    assert 'data-errors="0"' in body and 'data-broken-images="0"' in body and 'data-broken-audio="0"' in body, body
    # page 1 of the clip pages: 3 clips x (reference + 4 systems) players and spectrograms
    assert len(re.findall(r"<audio\b", dom)) == 15
    assert len(re.findall(r'<img class="mel"', dom)) == 15
    assert len(re.findall(r'<img class="layout"', dom)) == 3
    assert len(re.findall(r'data-loaded="1"', dom)) == len(re.findall(r"<img\b", dom)) >= 18
    assert len(re.findall(r"<polyline", dom)) == 3 * 4 * 2  # each system's curve over the reference
    # tables drawn, text kept as text
    assert "TiVA &lt;tiny&gt;" in dom and "<tiny>" not in dom
    assert "a warning with &lt;b&gt;markup&lt;/b&gt;" in dom
    assert len(re.findall(r"<tr", dom)) >= 1 + 4 + 1 + 5
    # the every-metric view of the per-clip table: one row per (clip, scored system), 3 metric columns
    proc = _headless(browser, "--dump-dom", bench["index"].resolve().as_uri() + "?metric=__all__")
    table = re.search(r'<table id="clip-table"[^>]*>(.*?)</table>', proc.stdout, re.S).group(1)
    assert len(re.findall(r"<tr", table)) == 1 + 5 * 4 - 1
    assert "Energy L1" in table and "DTW-dis" in table
    shot = tmp_path / "report.png"
    proc = _headless(browser, "--hide-scrollbars", "--window-size=1400,2000", f"--screenshot={shot}", bench["index"].resolve().as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    keep = os.environ.get("TIVA_BENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
    print(f"screenshot: {shot}")
