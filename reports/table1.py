"""Table 1 of the TiVA paper: the comparison table, as CSV, Markdown and LaTeX (booktabs).

Layout (as in the paper): Method, Vis. Feat., Guidance; then grouped columns -- Quality (FAD mel.,
FAD vgg., KL mel., KL pas., IS mel.), Synchronization (W-dis, DTW-dis), Semantic (IB (%)), Time
(mean per-sample generation time) -- with direction arrows; metrics measured beyond these go in
an "Other" group after them. Rows come in blocks (AutoRegressive, Diffusion, systems of unknown
family, then Reference rows: ground truth and sanity baselines).

Ranking: in every column the best value is bold and the second best underlined, among the
compared systems only: reference rows are shown, never ranked; reported rows (published numbers)
are ranked only when the table has no measured compared row or when ``rank_reported`` is set;
rows scored under other settings (``--allow-mixed``) are not ranked. Values are compared as
displayed (ties share the mark). A cell with no value shows '-'; a reported value the paper
replicated with public code keeps its parentheses.

Footnotes (letters, one per distinct note): a row whose number of scored clips differs from the
other measured rows or that skipped clips; reported rows (the citation); times that include model
loading; rows scored with different settings.

Rows are plain dicts (``rows_from_results`` makes them from ``results.json`` dicts; reported rows
come from ``tiva_bench.baselines.reported``): ``label``, ``method``, ``group``, ``vis_feat``,
``guidance``, ``role`` (compared | reference), ``source`` (measured | reported), ``cells``
(metric -> ``{"value", "text"?, "replicated"?}``), ``notes`` (list of str), ``rankable`` (bool),
``n_scored``, ``n_skipped``.

The LaTeX is a ``tabular`` fragment; it needs ``\\usepackage{booktabs}`` only (its first line says
so) and compiles inside any document class (``standalone``, ``article``, ``acmart``).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tiva_bench.core.files import atomic_write_text
from tiva_bench.reports.tables import check_comparable
from tiva_bench.reports.formatting import latex_escape, ranks


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    higher_is_better: bool
    group: str


PAPER_COLUMNS = (
    Column("fad_melception", "FAD mel.", False, "Quality"),
    Column("fad_vggish", "FAD vgg.", False, "Quality"),
    Column("kl_melception", "KL mel.", False, "Quality"),
    Column("kl_passt", "KL pas.", False, "Quality"),
    Column("is_melception", "IS mel.", True, "Quality"),
    Column("w_dis", "W-dis", False, "Synchronization"),
    Column("dtw_dis", "DTW-dis", False, "Synchronization"),
    Column("imagebind_score", "IB (%)", True, "Semantic"),
    Column("time", "Time", False, "Time"),
)
TEXT_COLUMNS = (("method", "Method"), ("vis_feat", "Vis. Feat."), ("guidance", "Guidance"))
BLOCK_ORDER = ("AutoRegressive", "Diffusion", "", "Reference")


@dataclass
class Table1:
    """A laid-out table: columns, rows in block order, ranks, footnote letters per row."""

    columns: list[Column]
    rows: list[dict]
    ranks: list[dict[str, int]]
    marks: list[list[str]]
    footnotes: list[tuple[str, str]] = field(default_factory=list)
    decimals: int = 2


def _scale(meta: dict) -> float:
    try:
        return float(meta.get("table_scale", 1.0))
    except (TypeError, ValueError):
        return 1.0


def rows_from_results(results: list[dict]) -> list[dict]:
    """Table rows from ``results.json`` dicts (set values times each metric's ``table_scale``;
    the time from the generation record, absent for precomputed outputs)."""
    rows = []
    for res in results:
        prov = res.get("provenance") or {}
        system = prov.get("system") or {}
        cells, info = {}, {}
        for name, meta in (res.get("metrics") or {}).items():
            value = meta.get("value")
            cells[name] = {"value": None if value is None else float(value) * _scale(meta)}
            info[name] = {"display": meta.get("display", name), "higher_is_better": bool(meta.get("higher_is_better", False))}
        timing = (prov.get("generation") or {}).get("timing") or {}
        notes = []
        if timing.get("seconds_per_sample") is not None:
            cells["time"] = {"value": float(timing["seconds_per_sample"])}
            if "model loading" in str(timing.get("includes", "")):
                notes.append("time: wall clock of the system's own script per batch, model loading included")
            if not timing.get("warmup_excluded", True):
                notes.append("time: a single batch, warm-up included")
        label = res.get("label") or res.get("gen_dir") or "?"
        rows.append({"label": label, "method": system.get("method") or label, "group": system.get("group", ""),
                     "vis_feat": system.get("vis_feat", "-"), "guidance": system.get("guidance", "-"),
                     "role": system.get("role", "compared"), "source": "measured", "cells": cells, "metric_info": info,
                     "notes": notes, "rankable": True, "n_scored": res.get("n_scored"), "n_skipped": res.get("n_skipped", 0),
                     "device": timing.get("device_name") or timing.get("device")})
    return rows


def measured_rows(results: list[dict], allow_mixed: bool = False) -> list[dict]:
    """``rows_from_results`` behind the comparability guard: raises on results scored under
    different settings, or with ``allow_mixed`` marks them (footnote, not ranked)."""
    differences = check_comparable(results, allow_mixed)
    rows = rows_from_results(results)
    for row, diff in zip(rows, differences):
        if diff:
            row["rankable"] = False
            row["notes"].append(f"{row['label']}: scored with other settings ({', '.join(diff)}); not ranked")
    return rows


def _columns(rows: list[dict], omit_empty: bool) -> list[Column]:
    cols = list(PAPER_COLUMNS)
    known = {c.key for c in cols}
    for row in rows:  # measured metrics beyond the paper's columns, in first-seen order
        for name, meta in (row.get("metric_info") or {}).items():
            if name not in known:
                known.add(name)
                cols.append(Column(name, meta["display"], meta["higher_is_better"], "Other"))
    if omit_empty:
        cols = [c for c in cols if any(r["cells"].get(c.key, {}).get("value") is not None for r in rows)]
    return cols


def _shown(cell: dict | None, column: Column, decimals: int) -> float | None:
    """The value as displayed (rounded), used for ranking; None when absent or not finite."""
    if not cell or cell.get("value") is None or not math.isfinite(cell["value"]):
        return None
    if "text" in cell:
        return float(cell["text"])
    return round(cell["value"], decimals)


def build_table1(rows: list[dict], decimals: int = 2, omit_empty: bool = False, rank_reported: bool = False) -> Table1:
    """Order rows in blocks, pick the columns, rank and attach footnotes (module docstring)."""
    order = {g: i for i, g in enumerate(BLOCK_ORDER)}
    rows = sorted(rows, key=lambda r: order.get(_block(r), order[""]))  # stable: input order within a block
    columns = _columns(rows, omit_empty)
    measured_compared = [r for r in rows if r["source"] == "measured" and r["role"] == "compared" and r.get("rankable", True)]
    rank_reported = rank_reported or not measured_compared

    def ranked(r):
        return r["role"] == "compared" and r.get("rankable", True) and (r["source"] == "measured" or rank_reported)

    row_ranks = [dict() for _ in rows]
    for col in columns:
        idx = [i for i, r in enumerate(rows) if ranked(r)]
        places = ranks([_shown(rows[i]["cells"].get(col.key), col, decimals) for i in idx], col.higher_is_better)
        for i, p in zip(idx, places):
            row_ranks[i][col.key] = p
    # footnotes
    notes: list[tuple[str, str]] = []
    letters: dict[str, str] = {}
    marks: list[list[str]] = []
    measured = [r for r in rows if r["source"] == "measured" and r.get("n_scored") is not None]
    usual_n = Counter(r["n_scored"] for r in measured).most_common(1)[0][0] if measured else None
    for r in rows:
        row_notes = list(r.get("notes") or [])
        if r["source"] == "measured" and r.get("n_scored") is not None and (r["n_scored"] != usual_n or r.get("n_skipped")):
            total = r["n_scored"] + (r.get("n_skipped") or 0)
            row_notes.insert(0, f"{r['label']}: {r['n_scored']} of {total} clips scored ({r.get('n_skipped') or 0} skipped)"
                             + (f"; the other rows have {usual_n}" if r["n_scored"] != usual_n else ""))
        if r["source"] == "reported":
            row_notes.append(f"reported numbers: {r.get('citation', r.get('reported', ''))}; in parentheses: values the paper replicated with public code")
        mine = []
        for text in row_notes:
            if text not in letters:
                letters[text] = chr(ord("a") + len(letters)) if len(letters) < 26 else str(len(letters) + 1)
                notes.append((letters[text], text))
            mine.append(letters[text])
        marks.append(mine)
    devices = sorted({r["device"] for r in rows if r.get("device") and r["cells"].get("time", {}).get("value") is not None})
    if devices:
        text = f"Time: mean per-sample generation time in seconds after a warm-up, on {', '.join(devices)}"
        notes.append(("", text))
    return Table1(columns, rows, row_ranks, marks, notes, decimals)


def _cell_text(row: dict, col: Column, decimals: int) -> str:
    cell = row["cells"].get(col.key)
    if not cell or cell.get("value") is None or not math.isfinite(cell["value"]):
        return "-"
    text = cell.get("text") or f"{cell['value']:.{decimals}f}"
    if col.key == "time":
        text += "s"
    return f"({text})" if cell.get("replicated") else text


def _arrow(col: Column, latex: bool) -> str:
    if latex:
        return r"$\uparrow$" if col.higher_is_better else r"$\downarrow$"
    return "↑" if col.higher_is_better else "↓"


def _groups(columns: list[Column]) -> list[tuple[str, int]]:
    spans: list[tuple[str, int]] = []
    for c in columns:
        if spans and spans[-1][0] == c.group:
            spans[-1] = (c.group, spans[-1][1] + 1)
        else:
            spans.append((c.group, 1))
    return spans


OTHER_BLOCK = "Other systems"


def _block(row: dict) -> str:
    return "Reference" if row.get("role") == "reference" else (row.get("group") or "")


def _block_title(block: str) -> str:
    return block or OTHER_BLOCK


def render_markdown(table: Table1) -> str:
    """GitHub Markdown: a group row as the header, the column names as the first (bold) row; best
    **bold**, second <u>underlined</u>; blocks as italic rows; footnotes under the table."""
    cols, n_text = table.columns, len(TEXT_COLUMNS)
    group_cells = [""] * n_text
    for group, span in _groups(cols):
        group_cells += [group] + [""] * (span - 1)
    lines = ["| " + " | ".join(group_cells) + " |", "|" + "|".join([":---"] * n_text + [":---:"] * len(cols)) + "|"]
    lines.append("| " + " | ".join([f"**{h}**" for _, h in TEXT_COLUMNS] + [f"**{c.header} {_arrow(c, False)}**" for c in cols]) + " |")
    block = None
    for row, rank, mark in zip(table.rows, table.ranks, table.marks):
        if _block(row) != block:
            block = _block(row)
            lines.append("| " + " | ".join([f"*{_block_title(block)}*"] + [""] * (n_text - 1 + len(cols))) + " |")
        name = row["method"] + (f"<sup>{','.join(mark)}</sup>" if mark else "")
        cells = [name, row.get("vis_feat") or "-", row.get("guidance") or "-"]
        for c in cols:
            t = _cell_text(row, c, table.decimals)
            p = rank.get(c.key, 0)
            cells.append(f"**{t}**" if p == 1 and t != "-" else f"<u>{t}</u>" if p == 2 and t != "-" else t)
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if table.footnotes:
        text += "\n" + "\n".join((f"<sup>{k}</sup> {t}" if k else t) + "  " for k, t in table.footnotes) + "\n"
    return text


def render_latex(table: Table1) -> str:
    """A booktabs ``tabular`` fragment with grouped headers (``\\multicolumn`` + ``\\cmidrule``)."""
    cols, n_text = table.columns, len(TEXT_COLUMNS)
    width = n_text + len(cols)
    lines = [r"% Table 1 (tiva-bench). Needs only \usepackage{booktabs}; \input it in any document (standalone, article, acmart).",
             rf"\begin{{tabular}}{{{'l' * n_text}{'c' * len(cols)}}}", r"\toprule"]
    head, rules, start = [r"\multicolumn{%d}{c}{}" % n_text], [], n_text + 1
    for group, span in _groups(cols):
        head.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(group)}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
        start += span
    lines.append(" & ".join(head) + r" \\")
    lines.append(" ".join(rules))
    lines.append(" & ".join([h for _, h in TEXT_COLUMNS] + [f"{latex_escape(c.header)} {_arrow(c, True)}" for c in cols]) + r" \\")
    block = None
    for row, rank, mark in zip(table.rows, table.ranks, table.marks):
        if _block(row) != block:
            block = _block(row)
            lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(_block_title(block))}}}}} \\")
        name = latex_escape(row["method"]) + (rf"\textsuperscript{{{','.join(mark)}}}" if mark else "")
        cells = [name, latex_escape(row.get("vis_feat") or "-"), latex_escape(row.get("guidance") or "-")]
        for c in cols:
            t = latex_escape(_cell_text(row, c, table.decimals))
            p = rank.get(c.key, 0)
            cells.append(rf"\textbf{{{t}}}" if p == 1 and t != "-" else rf"\underline{{{t}}}" if p == 2 and t != "-" else t)
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    for k, t in table.footnotes:
        mark = rf"\textsuperscript{{{k}}}" if k else ""
        lines.append(rf"\multicolumn{{{width}}}{{l}}{{\footnotesize {mark}{latex_escape(t)}}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def render_csv(table: Table1) -> str:
    """One line per row: block, method, vis_feat, guidance, role, source, one column per metric
    (full precision; empty when absent), replicated (metrics in parentheses), n_scored, notes."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["block", "method", "vis_feat", "guidance", "role", "source", *[c.key for c in table.columns], "replicated", "n_scored", "n_skipped", "notes"])
    for row, mark in zip(table.rows, table.marks):
        values = []
        for c in table.columns:
            cell = row["cells"].get(c.key)
            v = None if not cell else cell.get("value")
            values.append("" if v is None or not math.isfinite(v) else (cell.get("text") or repr(float(v))))
        replicated = ";".join(c.key for c in table.columns if (row["cells"].get(c.key) or {}).get("replicated"))
        notes = "; ".join(t for k, t in table.footnotes if k and k in mark)
        writer.writerow([_block(row), row["method"], row.get("vis_feat") or "-", row.get("guidance") or "-", row["role"], row["source"], *values,
                         replicated, "" if row.get("n_scored") is None else row["n_scored"], row.get("n_skipped") or "", notes])
    return buf.getvalue()


def write_table1(rows: list[dict], out_dir: str | Path, name: str = "table1", decimals: int = 2, omit_empty: bool = False,
                 rank_reported: bool = False) -> dict[str, Path]:
    """Write ``{name}.csv``, ``{name}.md`` and ``{name}.tex`` atomically; returns the paths."""
    table = build_table1(rows, decimals, omit_empty, rank_reported)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "tex": out / f"{name}.tex"}
    atomic_write_text(paths["csv"], render_csv(table))
    atomic_write_text(paths["md"], render_markdown(table))
    atomic_write_text(paths["tex"], render_latex(table))
    return paths
