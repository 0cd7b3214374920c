"""Prints the parity table (every comparison the tier made) at the end of a run."""

from tests.parity.helpers import ROWS


def pytest_terminal_summary(terminalreporter):
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("parity: largest deviations (relative L2 per vector; metric values: relative)")
    width = max(len(r[1]) for r in ROWS)
    for backbone, what, reference, value, note in ROWS:
        tr.write_line(f"{backbone:<11} {what:<{width}}  {value:9.2e}  vs {reference}{'  (' + note + ')' if note else ''}")


