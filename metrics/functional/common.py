"""Shared pieces of the functional metrics."""


class UndefinedMetric(ValueError):
    """The metric has no value for these inputs; ``str(exc)`` says why (recorded per clip)."""
