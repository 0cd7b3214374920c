"""The brief's top-level packages import from this repository."""

from pathlib import Path

import baselines
import metrics
import models
import reports
import tiva_bench

REPO = Path(__file__).resolve().parents[1]


def test_top_level_packages_resolve_inside_the_repo():
    for module in (tiva_bench, metrics, models, baselines, reports):
        assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__


def test_package_level_metric_api_exists():
    for name in ("frechet_distance", "kl_divergence", "inception_score", "w_dis", "dtw_dis"):
        assert callable(getattr(metrics, name))
    assert (REPO / "pyproject.toml").exists()
