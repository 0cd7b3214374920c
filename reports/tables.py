"""Paper-style summary tables from one or more ``results.json`` files.

One row per results file (its ``label``), one column per metric (its set mean, times the metric's
``table_scale``: the ImageBind score is shown x100 as papers do). Headers carry the
direction arrow (↓ lower is better, ↑ higher is better). In Markdown and LaTeX the best value of
each column is bold and the second best underlined, like Table 1 of the TiVA paper; ties share
the mark; NaN cells print as ``--`` and take no rank.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from tiva_bench.core.results import load_results
from tiva_bench.core.errors import ConfigError


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
    distinct = sorted(set(v for v in column if not math.isnan(v)), reverse=higher_is_better)
    best = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return column.map(lambda v: best.get(v, 0) if not math.isnan(v) else 0)


def _header(name: str, info: dict, latex: bool) -> str:
    meta = info.get(name, {"display": name, "higher_is_better": False})
    display = meta["display"]
    if latex:
        arrow = r"$\uparrow$" if meta["higher_is_better"] else r"$\downarrow$"
        return f"{_latex_escape(display)} {arrow}"
    return f"{display} {'↑' if meta['higher_is_better'] else '↓'}"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(a, b)
    return text


def _cells(frame: pd.DataFrame, info: dict, decimals: int, mark_best, mark_second) -> list[list[str]]:
    ranks = {c: _ranks(frame[c], info.get(c, {}).get("higher_is_better", False)) for c in frame.columns}
    body = []
    for label, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            if math.isnan(v):
                cells.append("--")
                continue
            text = f"{v:.{decimals}f}"
            r = ranks[c][label]
            cells.append(mark_best(text) if r == 1 else mark_second(text) if r == 2 else text)
        body.append(cells)
    return body


def render_markdown(frame: pd.DataFrame, info: dict, decimals: int = 2) -> str:
    """GitHub Markdown table; best **bold**, second <u>underlined</u>."""
    body = _cells(frame, info, decimals, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>")
    header = ["System", *[_header(c, info, False) for c in frame.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for label, cells in zip(frame.index, body):
        lines.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join(lines) + "\n"


def render_latex(frame: pd.DataFrame, info: dict, decimals: int = 2, caption: str | None = None) -> str:
    """A booktabs ``table``: best ``\\textbf``, second ``\\underline``."""
    body = _cells(frame, info, decimals, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\underline{{{t}}}")
    cols = "l" + "c" * len(frame.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule"]
    lines.append(" & ".join(["Method", *[_header(c, info, True) for c in frame.columns]]) + r" \\")
    lines.append(r"\midrule")
    for label, cells in zip(frame.index, body):
        lines.append(" & ".join([_latex_escape(str(label)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(result_paths: list[str | Path], out_dir: str | Path, metrics: list[str] | None = None, decimals: int = 2, name: str = "summary", caption: str | None = None) -> dict[str, Path]:
    """Load results, write ``{name}.csv``, ``{name}.md`` and ``{name}.tex``; returns the paths."""
    frame, info = summary_frame([load_results(p) for p in result_paths], metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "tex": out / f"{name}.tex"}
    frame.to_csv(paths["csv"], float_format="%.6g")
    paths["md"].write_text(render_markdown(frame, info, decimals), encoding="utf-8")
    paths["tex"].write_text(render_latex(frame, info, decimals, caption), encoding="utf-8")
    return paths
