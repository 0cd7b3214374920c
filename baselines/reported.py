"""Published numbers shipped as data: ``tiva-bench report --reported tiva2024``.

Each data file under ``baselines/data/`` holds one paper table, values as printed (strings, so a
table shows "30.0" and "3.40s" as the paper does). ``load_reported(name)`` gives its rows as table
rows: ``cells`` maps a metric name to ``{"value": float | None, "text": str, "replicated": bool}``
(``replicated``: the paper printed the value in parentheses -- its authors ran the system's public
code; ``None``: the paper has no value, shown as '-').
"""

from __future__ import annotations

import importlib.resources

import yaml

from tiva_bench.core.errors import ConfigError, UnknownNameError
from tiva_bench.core.registry import did_you_mean

REPORTED = {"tiva2024": "tiva2024_table1.yaml"}


def parse_printed(text: str) -> dict:
    """``"(8.58)"`` -> value 8.58, replicated; ``"3.40s"`` -> 3.40; ``"-"`` -> None."""
    text = str(text).strip()
    replicated = text.startswith("(") and text.endswith(")")
    core = text[1:-1].strip() if replicated else text
    if core in ("-", "--", ""):
        return {"value": None, "text": "-", "replicated": False}
    number = core[:-1] if core.endswith("s") else core
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(f"reported value {text!r} is not a number") from None
    return {"value": value, "text": number, "replicated": replicated}


def load_reported(name: str) -> dict:
    """``{"name", "citation", "table", "rows": [...]}`` for a shipped table (see the module docstring)."""
    if name not in REPORTED:
        raise UnknownNameError(f"unknown reported table {name!r}{did_you_mean(name, REPORTED)} (known: {', '.join(REPORTED)})")
    source = importlib.resources.files("tiva_bench.baselines") / "data" / REPORTED[name]
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    columns = data["columns"]
    rows = []
    citation = " ".join(data["citation"].split())
    for row in data["rows"]:
        if len(row["values"]) != len(columns):
            raise ConfigError(f"{REPORTED[name]}: row {row['method']} has {len(row['values'])} values for {len(columns)} columns")
        cells = {c: parse_printed(v) for c, v in zip(columns, row["values"])}
        label = row["method"] if row["method"] != "DiffFoley" else f"DiffFoley ({row['guidance']})"
        rows.append({"label": label, "method": row["method"], "group": row["group"], "vis_feat": row["vis_feat"],
                     "guidance": row["guidance"], "role": "compared", "source": "reported", "reported": name,
                     "citation": f"{data.get('short') or citation}, {data['table'].split(':')[0]}", "cells": cells})
    return {"name": name, "citation": citation, "table": data["table"], "columns": columns, "rows": rows}
