"""Paper-style summary tables from one or more ``results.json`` files.

One row per results file (its ``label``), one column per metric (its set mean, times the metric's
``table_scale``: the ImageBind score is shown x100 as papers do). Headers carry the
direction arrow (↓ lower is better, ↑ higher is better). In Markdown and LaTeX the best value of
each column is bold and the second best underlined, like Table 1 of the TiVA paper; ties share
the mark; NaN cells print as ``--`` and take no rank.

Comparability guard: results scored under different protocol settings (scoring window, ODF hop
and front-end, DTW mode, onset or energy settings, a backbone's version / front-end / weights, or a
different set of reference clips) are never ranked together. ``check_comparable`` names the first
difference in one line (``ConfigError``); with ``allow_mixed`` it returns, per result, the
differences from the first result instead, and those rows are shown with a footnote and left out
of the ranking. Only settings that matter for metrics both results hold are compared; results
without a recorded config (hand-written files) are not checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from tiva_bench.core.results import load_results
from tiva_bench.core.errors import ConfigError
from tiva_bench.reports.stats_summary import is_ranked
from tiva_bench.core.files import text_digest
from tiva_bench.reports.formatting import latex_escape, ranks

# config sections that change each metric's value (besides audio.*, which changes every one)
_SECTIONS = {"w_dis": ("sync",), "dtw_dis": ("sync",), "onset_acc": ("onset",), "onset_ap": ("onset",), "energy_l1": ("energy",)}
# skipped entries that name a reference clip (missing or unusable output), as the runner words them
_REFERENCE_SKIPS = ("no generated file named", "generated file ", "reference file ")


def protocol_settings(result: dict) -> dict[str, object]:
    """The settings a result's numbers depend on, flattened (``"sync.hop_length": 1280``, ...);
    {} when the result records no config."""
    config = result.get("config") or {}
    if not config:
        return {}
    names = list((result.get("metrics") or {}).keys())
    out: dict[str, object] = {}
    for key, value in (config.get("audio") or {}).items():
        out[f"audio.{key}"] = value
    for name in names:
        for section in _SECTIONS.get(name, ()):
            for key, value in (config.get(section) or {}).items():
                out[f"{section}.{key}"] = value
    extractors = (result.get("provenance") or {}).get("extractors") or {}
    for ex, meta in extractors.items():
        for key in ("version", "sample_rate", "frontend", "weights_sha256"):
            if key in meta:
                out[f"{ex}.{key}"] = meta[key]
    refs = {c.get("clip") for c in result.get("per_clip") or []}
    refs |= {s.get("clip") for s in result.get("skipped") or [] if str(s.get("reason", "")).startswith(_REFERENCE_SKIPS)}
    if refs:
        out["clip set"] = f"{len(refs)} clips ({text_digest(chr(10).join(sorted(map(str, refs))), 12)})"
    return out


def _differences(a: dict, b: dict) -> list[str]:
    return [k for k in a if k in b and a[k] != b[k]]


def check_comparable(results: list[dict], allow_mixed: bool = False) -> list[list[str]]:
    """Per result, the settings that differ from the first result with a recorded config
    (``"audio.window_s=10.24 (vs 8.0)"``); raises ``ConfigError`` on the first difference unless
    ``allow_mixed``."""
    settings = [protocol_settings(r) for r in results]
    anchor = next((i for i, s in enumerate(settings) if s), None)
    out: list[list[str]] = [[] for _ in results]
    if anchor is None:
        return out
    base, base_label = settings[anchor], results[anchor].get("label", "?")
    for i, s in enumerate(settings):
        diff = _differences(base, s)
        if diff and not allow_mixed:
            k = diff[0]
            raise ConfigError(f"results made under different settings cannot be ranked together: {k} is {base[k]} in '{base_label}' but {s[k]} in '{results[i].get('label', '?')}'",
                              "score them with the same settings, or pass --allow-mixed to show them with a footnote (not ranked)")
        out[i] = [f"{k}={s[k]} (vs {base[k]})" for k in diff]
    return out


def summary_frame(results: Iterable[dict], metrics: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, dict]]:
    """``(frame, info)``: frame indexed by label with one float column per metric.

    ``info`` maps metric -> {"display", "higher_is_better"} taken from the results files.
    """
    rows, info = {}, {}
    for res in results:
        label = res.get("label") or res.get("gen_dir", "?")
        base, k = label, 2
        while label in rows:
            label, k = f"{base} ({k})", k + 1
        rows[label] = {}
        for name, m in res["metrics"].items():
            value = m.get("value")
            scale = float(m.get("table_scale", 1.0))
            rows[label][name] = math.nan if value is None else float(value) * scale
            display = m.get("display", name) + (f" (x{scale:g})" if scale != 1.0 else "")
            info.setdefault(name, {"display": display, "higher_is_better": bool(m.get("higher_is_better", False))})
    frame = pd.DataFrame.from_dict(rows, orient="index")
    if metrics:
        missing = [m for m in metrics if m not in frame.columns]
        if missing:

            raise ConfigError(f"metrics not in the results: {', '.join(missing)} (present: {', '.join(frame.columns)})")
        frame = frame[metrics]
    frame.index.name = "system"
    return frame, info


def _ranks(column: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 for the best value(s), 2 for the second best, 0 otherwise (NaN never ranks)."""
    return pd.Series(ranks(list(column), higher_is_better), index=column.index)


def _header(name: str, info: dict, latex: bool) -> str:
    meta = info.get(name, {"display": name, "higher_is_better": False})
    display = meta["display"]
    if latex:
        arrow = r"$\uparrow$" if meta["higher_is_better"] else r"$\downarrow$"
        return f"{latex_escape(display)} {arrow}"
    return f"{display} {'↑' if meta['higher_is_better'] else '↓'}"


def _cells(frame: pd.DataFrame, info: dict, decimals: int, mark_best, mark_second, unranked: frozenset = frozenset()) -> list[list[str]]:
    ranked = frame.loc[[i for i in frame.index if i not in unranked]]
    places = {c: _ranks(ranked[c], info.get(c, {}).get("higher_is_better", False)).reindex(frame.index, fill_value=0) for c in frame.columns}
    body = []
    for label, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            if math.isnan(v):
                cells.append("--")
                continue
            text = f"{v:.{decimals}f}"
            r = places[c][label]
            cells.append(mark_best(text) if r == 1 else mark_second(text) if r == 2 else text)
        body.append(cells)
    return body


def render_markdown(frame: pd.DataFrame, info: dict, decimals: int = 2, mixed: dict[str, list[str]] | None = None,
                    reference: frozenset = frozenset()) -> str:
    """GitHub Markdown table; best **bold**, second <u>underlined</u>; ``mixed`` rows (label ->
    differing settings) are marked with a footnote and not ranked; ``reference`` rows (ground
    truth and sanity checks) are shown but never ranked (a footnote says so)."""
    mixed = {k: v for k, v in (mixed or {}).items() if v}
    body = _cells(frame, info, decimals, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>", frozenset(mixed) | frozenset(reference))
    header = ["System", *[_header(c, info, False) for c in frame.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for label, cells in zip(frame.index, body):
        lines.append("| " + " | ".join([str(label) + (" *" if label in mixed else ""), *cells]) + " |")
    text = "\n".join(lines) + "\n"
    for label, diff in mixed.items():
        text += f"\n\\* {label}: scored with other settings ({', '.join(diff)}); not ranked\n"
    if reference:
        text += f"\nNot ranked (reference and sanity rows): {', '.join(str(r) for r in frame.index if r in reference)}\n"
    return text


def render_latex(frame: pd.DataFrame, info: dict, decimals: int = 2, caption: str | None = None, mixed: dict[str, list[str]] | None = None,
                 reference: frozenset = frozenset()) -> str:
    """A booktabs ``table``: best ``\\textbf``, second ``\\underline``; ``mixed`` and ``reference`` as in Markdown."""
    mixed = {k: v for k, v in (mixed or {}).items() if v}
    body = _cells(frame, info, decimals, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\underline{{{t}}}", frozenset(mixed) | frozenset(reference))
    cols = "l" + "c" * len(frame.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule"]
    lines.append(" & ".join(["Method", *[_header(c, info, True) for c in frame.columns]]) + r" \\")
    lines.append(r"\midrule")
    for label, cells in zip(frame.index, body):
        lines.append(" & ".join([latex_escape(str(label)) + ("$^*$" if label in mixed else ""), *cells]) + r" \\")
    lines.append(r"\bottomrule")
    for label, diff in mixed.items():
        lines.append(rf"\multicolumn{{{len(frame.columns) + 1}}}{{l}}{{\footnotesize $^*${latex_escape(label)}: scored with other settings ({latex_escape(', '.join(diff))}); not ranked}} \\")
    lines += [r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(result_paths: list[str | Path], out_dir: str | Path, metrics: list[str] | None = None, decimals: int = 2, name: str = "summary",
                 caption: str | None = None, allow_mixed: bool = False) -> dict[str, Path]:
    """Load results, check they are comparable (``check_comparable``), write ``{name}.csv``,
    ``{name}.md`` and ``{name}.tex``; returns the paths."""
    results = [load_results(p) for p in result_paths]
    differences = check_comparable(results, allow_mixed)
    frame, info = summary_frame(results, metrics)
    mixed = {label: diff for label, diff in zip(frame.index, differences) if diff}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "tex": out / f"{name}.tex"}
    frame.to_csv(paths["csv"], float_format="%.6g")
    reference = frozenset(label for label, r in zip(frame.index, results) if not is_ranked(r))  # ground truth, sanity checks
    paths["md"].write_text(render_markdown(frame, info, decimals, mixed, reference), encoding="utf-8")
    paths["tex"].write_text(render_latex(frame, info, decimals, caption, mixed, reference), encoding="utf-8")
    return paths
