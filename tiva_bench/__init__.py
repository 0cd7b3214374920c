"""tiva-bench: train, run and score video-to-audio (V2A) models the way the TiVA paper does.

The top-level packages split the work:

* ``tiva_bench`` -- orchestration: CLI, config, decoding, pairing, runner, results.
* ``metrics``    -- pure metric maths (``metrics.functional``) and thin metric classes.
* ``models``     -- generative models (the TiVA model).
* ``baselines``  -- adapters that produce audio for a test set.
* ``reports``    -- results files -> tables (CSV / Markdown / LaTeX) and figures.
"""

__version__ = "0.1.0"
