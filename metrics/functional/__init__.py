"""Pure metric maths: numpy in, numbers out, no file I/O.

Functions raise ``UndefinedMetric`` (with a reason) where a value does not exist for the inputs,
e.g. W-dis against a silent clip whose onset-strength curve has no mass. The package-level
wrappers in ``metrics`` turn that into NaN plus a warning; the runner records the reason.
"""

from tiva_bench.metrics.functional.common import UndefinedMetric
from tiva_bench.metrics.functional.distribution import (
    GaussianStats,
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kl_divergence,
    kl_divergence_sigmoid,
    trace_sqrt_product,
)
from tiva_bench.metrics.functional.onsets import (
    average_precision,
    detect_onsets,
    match_onsets,
    onset_confidence,
    onset_metrics,
    onset_nms,
)
from tiva_bench.metrics.functional.similarity import cosine_similarity_score
from tiva_bench.metrics.functional.sync import (
    dtw_cost,
    dtw_dis_from_odf,
    energy_envelope,
    energy_l1_from_wav,
    fastdtw_cost,
    onset_strength,
    w_dis_from_odf,
    wasserstein_on_grid,
)

__all__ = [
    "UndefinedMetric",
    "GaussianStats",
    "frechet_distance",
    "frechet_distance_from_stats",
    "trace_sqrt_product",
    "inception_score",
    "kl_divergence",
    "kl_divergence_sigmoid",
    "average_precision",
    "detect_onsets",
    "match_onsets",
    "onset_confidence",
    "onset_metrics",
    "onset_nms",
    "cosine_similarity_score",
    "dtw_cost",
    "dtw_dis_from_odf",
    "energy_envelope",
    "energy_l1_from_wav",
    "fastdtw_cost",
    "onset_strength",
    "w_dis_from_odf",
    "wasserstein_on_grid",
]
