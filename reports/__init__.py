"""Results files -> summary tables (CSV, Markdown, LaTeX), intervals and paired tests, figures, HTML.

* ``tables``: paper-style summary tables.
* ``stats_summary``: bootstrap intervals and significance marks from results dicts
  (``add_intervals``, ``set_metric_interval``, ``compare_systems``, ``annotate``).
* ``figures``: Figure 4 mel grids, per-clip distributions, Figure 5 curves (matplotlib, PNG + PDF).
* ``html``: the static report folder (``write_html_report``).
"""

from tiva_bench.reports.tables import render_latex, render_markdown, summary_frame, write_tables

__all__ = ["summary_frame", "render_markdown", "render_latex", "write_tables"]
