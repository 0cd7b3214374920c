"""Results files -> summary tables (CSV, Markdown, LaTeX) and figures."""

from tiva_bench.reports.tables import render_latex, render_markdown, summary_frame, write_tables

__all__ = ["summary_frame", "render_markdown", "render_latex", "write_tables"]
