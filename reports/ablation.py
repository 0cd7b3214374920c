"""Ablation tables laid out like the TiVA paper's Tables 3, 4 and 5 (CSV, Markdown, LaTeX).

Row labels use the paper's notation written in a small markup: ``^{...}`` is a superscript and
``_{...}`` (or ``_x``) a subscript, e.g. ``CLS^{4,8,11}``, ``G w/ t_{a}``. Markdown renders them
as ``<sup>`` / ``<sub>``, LaTeX as math (``CLS$^{4,8,11}$``) with every other special character
escaped, CSV keeps the markup as written. Headers carry the direction arrow; in Markdown and
LaTeX the best value of each column is bold and the second best underlined (ties share the mark;
NaN prints ``--`` and takes no rank). The CSV holds the unscaled set values under the metric names
(``w_dis``, ``dtw_dis``, ...), one line per row with its folder name (``row``), the number of
clips and the seed; Markdown and LaTeX show table-scaled values (ImageBind x100) and a note with
the number of clips and the seeds.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tiva_bench.core.files import atomic_write_text
from tiva_bench.reports.formatting import LATEX_SPECIAL, latex_escape, ranks

# the paper's short headers (Tables 3-5); other metrics use their display name
PAPER_HEADERS = {"w_dis": "W.", "dtw_dis": "DTW.", "imagebind_score": "IB", "layout_l2": "L2(t_{a}, t_{v})",
                 "fad_melception": "FAD", "kl_melception": "KL", "is_melception": "IS"}
_UP, _DOWN = r"$\uparrow$", r"$\downarrow$"
_MARKUP = re.compile(r"([_^])(?:\{([^{}]*)\}|([A-Za-z0-9]))")


@dataclass
class TableRow:
    """One row: ``label`` (paper notation), ``slug`` (its folder name), descriptor ``cells``,
    ``values`` (metric -> unscaled set value, NaN when undefined), ``n`` clips."""

    label: str
    slug: str
    values: dict[str, float]
    cells: dict[str, str] = field(default_factory=dict)
    n: int = 0


def _split_markup(text: str):
    """Yield ``("text", s)`` and ``("^" | "_", inner)`` pieces of a label."""
    pos = 0
    for m in _MARKUP.finditer(text):
        if m.start() > pos:
            yield "text", text[pos:m.start()]
        yield m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    if pos < len(text):
        yield "text", text[pos:]


def label_latex(text: str) -> str:
    """``CLS^{4,8,11}`` -> ``CLS$^{4,8,11}$``; everything else escaped."""
    out = []
    for kind, piece in _split_markup(text):
        if kind == "text":
            out.append(latex_escape(piece))
        else:
            inner = "".join(LATEX_SPECIAL.get(ch, ch) if ch in "\\&%$#_{}~^" else ch for ch in piece)
            inner = inner.replace(r"\textbackslash{}", r"\backslash ").replace(r"\textasciitilde{}", r"\sim ").replace(r"\textasciicircum{}", r"\wedge ")
            out.append(f"${kind}{{{inner}}}$")
    return "".join(out)


def _md_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\|*_`[]":
        text = text.replace(ch, "\\" + ch)
    return text


def label_markdown(text: str) -> str:
    """``CLS^{4,8,11}`` -> ``CLS<sup>4,8,11</sup>``; Markdown specials escaped."""
    out = []
    for kind, piece in _split_markup(text):
        if kind == "text":
            out.append(_md_escape(piece))
        else:
            tag = "sup" if kind == "^" else "sub"
            out.append(f"<{tag}>{_md_escape(piece)}</{tag}>")
    return "".join(out)


def _header(metric: str, info: dict) -> str:
    meta = info.get(metric, {})
    return PAPER_HEADERS.get(metric, meta.get("display", metric))


def _scaled(row: TableRow, metric: str, info: dict) -> float:
    v = row.values.get(metric, math.nan)
    return v * float(info.get(metric, {}).get("table_scale", 1.0)) if not math.isnan(v) else math.nan


def column_decimals(values: list[float], decimals: int, significant: int = 3) -> int:
    """At least ``decimals``, and enough for ``significant`` digits of the column's largest
    magnitude (0.0053 prints as 0.00530, not 0.005); NaNs and zeros are ignored."""
    finite = [abs(v) for v in values if not math.isnan(v) and v != 0]
    if not finite:
        return decimals
    return max(decimals, significant - 1 - math.floor(math.log10(max(finite))))


def _body(rows: list[TableRow], columns: list[str], info: dict, decimals: int, best, second) -> list[list[str]]:
    scaled = {c: [_scaled(r, c, info) for r in rows] for c in columns}
    marks = {c: ranks(scaled[c], bool(info.get(c, {}).get("higher_is_better", False))) for c in columns}
    places = {c: column_decimals(scaled[c], decimals) for c in columns}
    body = []
    for i, _ in enumerate(rows):
        cells = []
        for c in columns:
            v = scaled[c][i]
            if math.isnan(v):
                cells.append("--")
                continue
            text = f"{v:.{places[c]}f}"
            cells.append(best(text) if marks[c][i] == 1 else second(text) if marks[c][i] == 2 else text)
        body.append(cells)
    return body


def render_markdown(title: str, rows: list[TableRow], columns: list[str], info: dict, descriptors: list[str], notes: str, decimals: int = 3) -> str:
    first = descriptors or ["Method"]
    header = [*first, *[f"{label_markdown(_header(c, info))} {'↑' if info.get(c, {}).get('higher_is_better') else '↓'}" for c in columns]]
    lines = [f"**{_md_escape(title)}**", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(first) + ["---:"] * len(columns)) + "|"]
    body = _body(rows, columns, info, decimals, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>")
    for row, cells in zip(rows, body):
        lead = [label_markdown(row.cells.get(d, "")) for d in descriptors] if descriptors else [label_markdown(row.label)]
        lines.append("| " + " | ".join([*lead, *cells]) + " |")
    lines += ["", _md_escape(notes)]
    return "\n".join(lines) + "\n"


def render_latex(title: str, rows: list[TableRow], columns: list[str], info: dict, descriptors: list[str], notes: str, decimals: int = 3) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``)."""
    first = descriptors or ["Method"]
    header = [*[latex_escape(d) for d in first],
              *[f"{label_latex(_header(c, info))} {_UP if info.get(c, {}).get('higher_is_better') else _DOWN}" for c in columns]]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(title)}. {latex_escape(notes)}}}",
             rf"\begin{{tabular}}{{{'l' * len(first)}{'c' * len(columns)}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    body = _body(rows, columns, info, decimals, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\underline{{{t}}}")
    for row, cells in zip(rows, body):
        lead = [label_latex(row.cells.get(d, "")) for d in descriptors] if descriptors else [label_latex(row.label)]
        lines.append(" & ".join([*lead, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[TableRow], columns: list[str], descriptors: list[str], extra: dict) -> str:
    """One line per row: ``row, label, <descriptors>, <metrics (unscaled)>, n_clips, <extra keys>``."""
    fh = io.StringIO()
    w = csv.writer(fh, lineterminator="\n")
    keys = list(extra)
    w.writerow(["row", "label", *descriptors, *columns, "n_clips", *keys])
    for r in rows:
        values = ["" if math.isnan(r.values.get(c, math.nan)) else repr(float(r.values[c])) for c in columns]
        w.writerow([r.slug, r.label, *[r.cells.get(d, "") for d in descriptors], *values, r.n, *[extra[k] for k in keys]])
    return fh.getvalue()


def write_ablation_tables(out_dir: str | Path, name: str, title: str, rows: list[TableRow], columns: list[str], info: dict,
                          descriptors: list[str] = (), notes: str = "", extra: dict | None = None, decimals: int = 3) -> dict[str, Path]:
    """Write ``<name>.csv``, ``<name>.md``, ``<name>.tex`` into ``out_dir``; returns the paths.

    ``info``: metric -> {"higher_is_better", "table_scale", "display"}; ``extra``: constant
    columns of the CSV (seed, data seed, preset, ...)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    descriptors = list(descriptors)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "tex": out / f"{name}.tex"}
    atomic_write_text(paths["csv"], render_csv(rows, columns, descriptors, dict(extra or {})))
    atomic_write_text(paths["md"], render_markdown(title, rows, columns, info, descriptors, notes, decimals))
    atomic_write_text(paths["tex"], render_latex(title, rows, columns, info, descriptors, notes, decimals))
    return paths
