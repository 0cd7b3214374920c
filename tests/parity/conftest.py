"""The parity tier's collection rule and the table it prints at the end of a run.

Modules that import reference packages are collected only when the mark expression selects
``parity`` (``pytest -m parity``): the default run, whose environment has no reference packages,
never imports them. Every comparison the tier made is printed as one table at the end.
"""

from __future__ import annotations

from pathlib import Path

from tests.parity.helpers import ROWS

NEEDS_REFERENCES = {"test_vggish.py", "test_panns.py", "test_melception.py", "test_passt.py", "test_imagebind.py", "test_metric_values.py"}


class _Marks:
    def __call__(self, name, **kwargs):
        return name == "parity"


def selects_parity(markexpr: str) -> bool:
    """Whether a ``-m`` expression selects tests marked ``parity`` (and nothing else)."""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(_Marks()))
    except Exception:  # an older or newer pytest: a plain reading of the expression
        return "parity" in markexpr and "not parity" not in markexpr


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.name in NEEDS_REFERENCES and not selects_parity(config.getoption("markexpr") or ""):
        return True
    return None


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("parity: largest deviations (relative L2 per vector; metric values: relative)")
    width = max(len(r[1]) for r in ROWS)
    for backbone, what, reference, value, note in ROWS:
        tr.write_line(f"{backbone:<11} {what:<{width}}  {value:9.2e}  vs {reference}{'  (' + note + ')' if note else ''}")
