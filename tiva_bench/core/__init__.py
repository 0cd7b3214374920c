"""The bottom layer: plumbing that every other part of tiva-bench builds on.

Nothing here imports another project module outside ``tiva_bench.core``.
"""
