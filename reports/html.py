"""The static HTML report: ``OUT/report/index.html``, opened from disk with no server.

``write_html_report(results, out_dir)`` writes::

    OUT/report/index.html            page (from templates/index.html)
    OUT/report/assets/               report.css, report.js (package data)
    OUT/report/data/report.js        summary, per-clip values, skipped clips, provenance
    OUT/report/data/clips-NNNN.js    one page of clips (``page_size`` clips): media paths, ODF curves
    OUT/report/media/<clip>/         spectrogram PNGs, frames strip, predicted layout

Data files are scripts (``window.TIVA_REPORT = ...``), not JSON, because browsers refuse to fetch
files from a ``file://`` page; clip pages are loaded only when opened, so 1,000 clips open as fast
as 10. Audio players point at the scored files by relative path (``copy_media=True`` copies them
into ``media/`` instead, making the folder self-contained). Media file names are made safe
(``safe_name``); labels and clip names reach the page only as text, never as HTML.

Summary cells show the set value with its 95% bootstrap interval; the best ranked system is bold,
and systems not significantly different from it (paired Wilcoxon signed-rank on per-clip values,
Holm-corrected) are highlighted and marked "≈". Everything is computed from the results dicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import string
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import quote

import numpy as np

from tiva_bench.core.errors import ConfigError, InputError
from tiva_bench.core.files import atomic_write_text
from tiva_bench.core.results import load_results
from tiva_bench.metrics.functional.sync import onset_strength
from tiva_bench.reports.figures import (MEL_HOP, MEL_SR, colourise, frames_strip, load_layout, load_window, mel_db,
                                        video_for_reference, write_mel_png)
from tiva_bench.reports.stats_summary import DEFAULT_RESAMPLES, annotate, is_ranked, unique_labels, write_stats_csv

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, max_len: int = 60) -> str:
    """A file-name-safe, URL-safe slug of ``name``: ASCII letters, digits, ``._-``; an 8-hex hash of
    the original is appended whenever anything was changed or cut, so distinct names stay distinct."""
    slug = _SAFE.sub("_", name).strip("._") or "x"
    if slug != name or len(slug) > max_len:
        slug = f"{slug[:max_len].rstrip('._-')}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"
    return slug


def _url(path: Path, start: Path) -> str:
    """Relative URL from the folder ``start`` to ``path`` (percent-encoded, forward slashes)."""
    return quote(Path(os.path.relpath(Path(path).resolve(), start.resolve())).as_posix())


def _script(var: str, data) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"{var} = {text.replace('</', '<' + chr(92) + '/')};\n"  # "</script>" inside a string cannot end the script


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _asset_text(*parts: str) -> str:
    return resources.files("tiva_bench.reports").joinpath(*parts).read_text(encoding="utf-8")


def _sync_settings(res: dict) -> dict:
    sync = res.get("config", {}).get("sync", {}) or {}
    return {"sample_rate": int(sync.get("sample_rate", 16000)), "hop_length": int(sync.get("hop_length", 1280)),
            "n_fft": int(sync.get("n_fft", 2048)), "n_mels": int(sync.get("n_mels", 128))}


def _window_s(res: dict) -> float:
    w = res.get("config", {}).get("audio", {}).get("window_s", 8.0)
    return float(8.0 if w is None else w)


class _ClipMedia:
    """Writes one clip's media (spectrograms, frames, layout) and returns its page record."""

    def __init__(self, report_dir: Path, copy_media: bool, frames: bool, odf: bool):
        self.report_dir, self.copy_media, self.frames, self.odf = report_dir, copy_media, frames, odf

    def _audio_url(self, src: str, dest_dir: Path, stem: str) -> str | None:
        src_path = Path(src)
        if not src_path.exists():
            return None
        if self.copy_media:
            dest = dest_dir / f"{stem}{src_path.suffix.lower()}"
            if not dest.exists() or dest.stat().st_mtime < src_path.stat().st_mtime:
                shutil.copyfile(src_path, dest)
            return _url(dest, self.report_dir)
        return _url(src_path, self.report_dir)

    def _mel(self, src: str, dest: Path, window_s: float) -> tuple[str | None, np.ndarray | None, str | None]:
        """(url, 16-kHz window, reason when unusable); the PNG is rewritten only when older than its source."""
        try:
            wav = load_window(src, MEL_SR, window_s)
        except InputError as exc:
            return None, None, exc.reason
        if not dest.exists() or dest.stat().st_mtime < Path(src).stat().st_mtime:
            mel = mel_db(wav, MEL_SR)
            write_mel_png(mel, dest, height=96, width=min(1024, mel.shape[1]))
        return _url(dest, self.report_dir), wav, None

    def clip(self, key: str, slug: str, systems: list[tuple[str, str, dict | None]], sync: dict, window_s: float) -> dict:
        """``systems``: (label, system slug, per_clip row or None when that system skipped the clip)."""
        d = self.report_dir / "media" / slug
        d.mkdir(parents=True, exist_ok=True)
        scored = [row for _, _, row in systems if row is not None]
        ref_src = scored[0]["ref"]
        ref_url, ref_wav, ref_reason = self._mel(ref_src, d / "reference.png", window_s)
        record = {"key": key, "slug": slug, "ref": {"audio": self._audio_url(ref_src, d, "reference"), "mel": ref_url, "reason": ref_reason},
                  "rows": [], "frames": None, "layout": None, "layout_system": None, "ref_odf": None, "hop_s": sync["hop_length"] / sync["sample_rate"]}
        odf_of = self._odf_fn(sync, window_s)
        if self.odf and ref_wav is not None:
            record["ref_odf"] = odf_of(ref_src, ref_wav)
        for label, sys_slug, row in systems:
            if row is None:
                record["rows"].append({"label": label, "audio": None, "mel": None, "reason": "skipped for this system"})
                continue
            url, wav, reason = self._mel(row["gen"], d / f"{sys_slug}.png", window_s)
            values = row.get("values", {})
            entry = {"label": label, "audio": self._audio_url(row["gen"], d, sys_slug), "mel": url, "reason": reason,
                     "w_dis": _num(values.get("w_dis")), "dtw_dis": _num(values.get("dtw_dis")), "odf": None}
            if self.odf and wav is not None and record["ref_odf"] is not None:
                entry["odf"] = odf_of(row["gen"], wav)
            record["rows"].append(entry)
            if record["layout"] is None:
                layout = load_layout(row["gen"])
                if layout is not None:
                    dest = d / f"{sys_slug}.layout.png"
                    from PIL import Image

                    lay = np.asarray(layout, np.float64).T[::-1]  # channels as rows, time along x
                    img = Image.fromarray(colourise(lay, float(lay.min()), float(lay.max()) or 1.0, "viridis"))
                    img.resize((max(img.width, 408), max(img.height * 6, 30)), Image.Resampling.NEAREST).save(dest)
                    record["layout"], record["layout_system"] = _url(dest, self.report_dir), label
        if self.frames:
            video = video_for_reference(ref_src)
            if video is not None:
                dest = d / "frames.jpg"
                if not dest.exists():
                    from PIL import Image

                    try:
                        Image.fromarray(frames_strip(video, n=8, window_s=window_s or 8.0)).save(dest, quality=85)
                    except InputError:
                        dest = None
                if dest is not None:
                    record["frames"] = _url(dest, self.report_dir)
        return record

    @staticmethod
    def _odf_fn(sync: dict, window_s: float) -> Callable[[str, np.ndarray], list[float]]:
        """ODF of a file as the scorer computes it; ``wav_16k`` (the window at 16 kHz, already
        decoded for the spectrogram) is reused when the sync rate is 16 kHz."""
        def odf(src: str, wav_16k: np.ndarray) -> list[float]:
            wav = wav_16k if sync["sample_rate"] == MEL_SR else load_window(src, sync["sample_rate"], window_s)
            curve = onset_strength(wav, sr=sync["sample_rate"], hop_length=sync["hop_length"], n_fft=sync["n_fft"], n_mels=sync["n_mels"])
            return [round(float(v), 4) for v in curve]
        return odf


def _load_all(results: Iterable) -> list[dict]:
    out = []
    for r in results:
        out.append(r if isinstance(r, dict) else load_results(r))
    if not out:
        raise ConfigError("no results to report", "give one or more results.json files or folders")
    return out


def write_html_report(results: Iterable[str | Path | dict], out_dir: str | Path, *, title: str = "tiva-bench report",
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, alpha: float = 0.05, page_size: int = 10,
                      copy_media: bool = False, media: bool = True, decimals: int = 3,
                      progress: Callable[[Iterable], Iterable] | None = None) -> Path:
    """Write the report folder ``out_dir/report/`` and return the path of its ``index.html``.

    ``results``: results.json paths, folders holding one, or loaded dicts (one system each).
    Intervals (``n_resamples`` bootstrap resamples, ``seed``) and the paired tests (``alpha``) are
    computed here, so older results files get them too; ``summary_stats.csv`` beside ``index.html``
    holds them. ``media=False`` skips spectrograms, curves and players (tables only).
    ``progress`` wraps the clip iterator (e.g. tqdm). Rewriting a report reuses spectrograms whose
    source audio did not change.
    """
    loaded = _load_all(results)
    annotated = annotate(loaded, n_resamples, seed, alpha)
    labels = unique_labels(annotated)
    report_dir = Path(out_dir) / "report"
    for sub in ("assets", "data", "media"):
        (report_dir / sub).mkdir(parents=True, exist_ok=True)
    for name in ("report.css", "report.js"):
        atomic_write_text(report_dir / "assets" / name, _asset_text("assets", name))
    for old in (report_dir / "data").glob("clips-*.js"):  # pages of an earlier, larger report
        old.unlink()

    metrics: dict[str, dict] = {}
    for res in annotated:
        for name, m in res.get("metrics", {}).items():
            metrics.setdefault(name, {"name": name, "display": m.get("display", name), "higher_is_better": bool(m.get("higher_is_better", False)),
                                      "description": m.get("description", ""), "scale": float(m.get("table_scale", 1.0)), "per_clip": False})
    rows_by_label = {lab: {row["clip"]: row for row in res.get("per_clip", [])} for lab, res in zip(labels, annotated)}
    for name in metrics:
        metrics[name]["per_clip"] = any(name in row.get("values", {}) for rows in rows_by_label.values() for row in rows.values())

    summary: dict[str, dict] = {}
    for lab, res in zip(labels, annotated):
        for name, m in res.get("metrics", {}).items():
            scale = metrics[name]["scale"]
            vs = m.get("vs_best", {})
            summary.setdefault(name, {})[lab] = {
                "value": _scaled(m.get("value"), scale), "ci_low": _scaled(m.get("ci_low"), scale), "ci_high": _scaled(m.get("ci_high"), scale),
                "n": m.get("n"), "n_undefined": m.get("n_undefined"), "best": bool(vs.get("best", False)),
                "same_as_best": bool(vs.get("same_as_best", False)), "p_holm": _num(vs.get("p_holm"))}

    all_clips = sorted({c for rows in rows_by_label.values() for c in rows})
    slugs, used = {}, set()
    for c in all_clips:
        s = safe_name(c)
        while s in used:
            s = safe_name(s + "_")
        slugs[c] = s
        used.add(s)
    sys_slugs = {}
    for lab in labels:
        s = safe_name(lab)
        while s in sys_slugs.values() or s in ("reference", "frames"):
            s = safe_name(s + "_")
        sys_slugs[lab] = s

    clip_table = []
    for c in all_clips:
        values, undefined = {}, {}
        for lab in labels:
            row = rows_by_label[lab].get(c)
            if row is not None:
                values[lab] = {k: _scaled(v, metrics.get(k, {}).get("scale", 1.0)) for k, v in row.get("values", {}).items()}
                if row.get("undefined"):
                    undefined[lab] = row["undefined"]
        clip_table.append({"key": c, "slug": slugs[c], "values": values, "undefined": undefined})

    skipped = [{"system": lab, "clip": str(s.get("clip", "?")), "reason": str(s.get("reason", ""))} for lab, res in zip(labels, annotated) for s in res.get("skipped", [])]
    systems = [{"label": lab, "ranked": is_ranked(res), "n_scored": len(res.get("per_clip", [])), "n_skipped": len(res.get("skipped", [])),
                "gen_dir": res.get("gen_dir"), "ref_dir": res.get("ref_dir"), "warnings": res.get("warnings", []),
                "provenance": res.get("provenance", {}), "config": res.get("config", {})} for lab, res in zip(labels, annotated)]
    n_pages = max(1, math.ceil(len(all_clips) / page_size))
    data = {
        "title": title, "decimals": decimals, "page_size": page_size, "n_pages": n_pages,
        "systems": systems, "metrics": list(metrics.values()), "summary": summary, "clips": clip_table, "skipped": skipped,
        "summary_note": (f"Set values with 95% percentile bootstrap intervals over clips ({n_resamples:,} resamples, seed {seed}; set metrics "
                         f"such as FAD carry an interval only when scoring computed one). Bold: best ranked system; highlighted with \u2248: "
                         f"not significantly different from the best (paired Wilcoxon signed-rank on per-clip values, Holm-corrected, "
                         f"alpha {alpha:g}). Grey italic rows are references or sanity checks, never ranked."),
        "stats_note": f"Intervals and tests computed when this report was written, from the results files: bootstrap resamples {n_resamples}, seed {seed}, alpha {alpha:g}.",
    }
    atomic_write_text(report_dir / "data" / "report.js", _script("window.TIVA_REPORT", data))

    clip_media = _ClipMedia(report_dir, copy_media, frames=media, odf=media)
    sync = _sync_settings(annotated[0])
    window_s = _window_s(annotated[0])
    iterator: Iterable = range(n_pages)
    if progress is not None:
        iterator = progress(iterator, total=n_pages)
    for p in iterator:
        page = []
        for c in all_clips[p * page_size:(p + 1) * page_size]:
            entries = [(lab, sys_slugs[lab], rows_by_label[lab].get(c)) for lab in labels]
            if media:
                page.append(clip_media.clip(c, slugs[c], entries, sync, window_s))
            else:
                page.append({"key": c, "slug": slugs[c], "ref": {"audio": None, "mel": None, "reason": "media off"}, "rows": [], "frames": None,
                             "layout": None, "ref_odf": None, "hop_s": sync["hop_length"] / sync["sample_rate"]})
        atomic_write_text(report_dir / "data" / f"clips-{p:04d}.js", _script(f"window.TIVA_PAGES[{p}]", page))

    layout_note = " and, where a system saved one, its predicted audio layout" if media else ""
    first = annotated[0]
    subtitle = (f"{len(labels)} systems, {len(all_clips)} clips; scored window {window_s:g} s; "
                f"tiva-bench git {first.get('provenance', {}).get('git') or 'unknown'}")
    page_html = string.Template(_asset_text("templates", "index.html")).substitute(
        title=_html_escape(title), subtitle=_html_escape(subtitle), layout_note=layout_note)
    index = report_dir / "index.html"
    atomic_write_text(index, page_html)
    write_stats_csv(annotated, report_dir / "summary_stats.csv")
    return index


def _scaled(v, scale: float) -> float | None:
    v = _num(v)
    return None if v is None else v * scale


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
