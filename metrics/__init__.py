"""tiva-bench metrics: pure maths in ``tiva_bench.metrics.functional``, thin classes, and the registry.

Package-level functions take numpy arrays and return floats with DESIGN.md's defaults::

    from tiva_bench import metrics
    metrics.w_dis(gen_wav, ref_wav, sr)            # frames, lower is better
    metrics.dtw_dis(gen_wav, ref_wav, sr)
    metrics.frechet_distance(gen_feats, ref_feats)  # (n, d) arrays
    metrics.kl_divergence(ref_logits, gen_logits)   # paired (n, C)
    metrics.inception_score(logits, splits=10)      # -> (mean, std)
"""

from tiva_bench.metrics.distribution import CosineSimilarity, FrechetDistance, InceptionScore, KLDivergence
from tiva_bench.metrics.functional import UndefinedMetric
from tiva_bench.metrics.functional.distribution import (
    FewSamplesWarning,
    frechet_distance,
    inception_score,
    kl_divergence,
    kl_divergence_sigmoid,
)
from tiva_bench.metrics.functional.similarity import cosine_similarity_score
from tiva_bench.metrics.registry import METRICS, MetricSpec, resolve_metrics
from tiva_bench.metrics.sync import DTWDis, UndefinedMetricWarning, WDis, dtw_dis, onset_acc_ap, w_dis

__all__ = [
    "METRICS",
    "MetricSpec",
    "resolve_metrics",
    "UndefinedMetric",
    "UndefinedMetricWarning",
    "FewSamplesWarning",
    "w_dis",
    "dtw_dis",
    "onset_acc_ap",
    "frechet_distance",
    "kl_divergence",
    "kl_divergence_sigmoid",
    "inception_score",
    "cosine_similarity_score",
    "WDis",
    "DTWDis",
    "FrechetDistance",
    "KLDivergence",
    "InceptionScore",
    "CosineSimilarity",
]
