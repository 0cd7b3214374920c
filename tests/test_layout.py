"""The brief's folders are importable under the project's own namespace, and nothing generic leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tiva_bench
from tiva_bench import baselines, metrics, models, reports

REPO = Path(__file__).resolve().parents[1]
GENERIC = ("metrics", "models", "baselines", "reports", "configs")


def test_mapped_packages_resolve_inside_the_repo_folders():
    for module, folder in ((metrics, "metrics"), (models, "models"), (baselines, "baselines"), (reports, "reports")):
        assert Path(module.__file__).resolve() == REPO / folder / "__init__.py"
        assert module.__name__ == f"tiva_bench.{folder}"
    assert Path(tiva_bench.__file__).resolve().is_relative_to(REPO)


def test_no_generic_top_level_module_is_loaded():
    import tiva_bench.cli  # noqa: F401
    import tiva_bench.metrics.registry  # noqa: F401
    import tiva_bench.reports.tables  # noqa: F401
    import tiva_bench.run  # noqa: F401

    leaked = sorted(m for m in sys.modules if m.split(".")[0] in GENERIC)
    assert not leaked, leaked


def test_package_level_metric_api_exists():
    for name in ("frechet_distance", "kl_divergence", "inception_score", "w_dis", "dtw_dis"):
        assert callable(getattr(metrics, name))


def test_cli_works_from_a_folder_with_its_own_metrics_and_models(tmp_path):
    """A research project with ``metrics/`` and ``models/`` packages must not shadow ours."""
    for name in ("metrics", "models", "reports"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user project package was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "tiva_bench", "metrics", "--list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "w_dis" in out.stdout
