"""Formatting shared by every table writer: LaTeX escaping and best / second-best ranks."""

from __future__ import annotations

import math

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX text with every special character escaped."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def ranks(values, higher_is_better: bool) -> list[int]:
    """1 for the best value(s), 2 for the second best, 0 otherwise; None and NaN never rank."""
    usable = [v is not None and not math.isnan(v) for v in values]
    distinct = sorted({v for v, ok in zip(values, usable) if ok}, reverse=higher_is_better)
    place = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return [place.get(v, 0) if ok else 0 for v, ok in zip(values, usable)]
