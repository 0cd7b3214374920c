"""tiva-bench: train, run and score video-to-audio (V2A) models the way the TiVA paper does.

Installed, everything lives under this one namespace (docs/ARCHITECTURE.md shows the layers):

* ``tiva_bench.core``      -- floor 1: errors, registry, files, decoding, cache, weights, pools.
* ``tiva_bench.metrics``   -- floor 2: pure metric maths (``functional``), specs, backbones.
* ``tiva_bench.models``    -- floor 2: generative models (the TiVA model).
* ``tiva_bench.baselines`` -- floor 3: adapters that produce audio for a test set.
* ``tiva_bench.reports``   -- floor 3: results -> tables (CSV / Markdown / LaTeX) and figures.
* ``tiva_bench`` itself    -- floor 4: CLI, scoring, data, training, run, ablate.

The repository keeps ``metrics/``, ``models/``, ``baselines/``, ``reports/`` and ``configs/`` at its
top level; the build maps them into this package (setuptools ``package-dir``). When this file is
imported from a source checkout (a clone, with or without an install), the same mapping is made at
import time, so ``python -m tiva_bench`` and ``pytest`` work from the checkout and never see a
generic top-level ``metrics`` or ``models`` module.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.2.0"

_MAPPED_FOLDERS = ("metrics", "models", "baselines", "reports", "configs")


class _SourceFolders(importlib.abc.MetaPathFinder):
    """Finds ``tiva_bench.<folder>`` at ``<checkout>/<folder>`` (subpackages follow its __path__)."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in _MAPPED_FOLDERS:
            return None
        folder = self.root / name
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])


def _map_source_folders() -> None:
    here = Path(__file__).resolve().parent
    root = here.parent
    if (here / "metrics").is_dir() or not (root / "pyproject.toml").is_file() or not (root / "metrics" / "__init__.py").is_file():
        return  # an installed copy: the folders are inside the package already
    if not any(isinstance(f, _SourceFolders) and f.root == root for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFolders(root))


_map_source_folders()

# numba's compile cache: tiva-bench's own folder, set before numba is imported (see core/jit_cache.py)
from tiva_bench.core.jit_cache import configure_environment as _configure_numba_cache  # noqa: E402

_configure_numba_cache()
