"""The layering rule, checked on the source: imports only point down.

Floors (see docs/ARCHITECTURE.md): 1 ``tiva_bench/core``; 2 ``metrics/`` and ``models/``;
3 ``baselines/`` and ``reports/``; 4 the rest of ``tiva_bench/`` (orchestration, CLI). A module may
import its own component and any lower floor, never a higher floor nor a sibling on its own floor.
Project imports inside functions are allowed only in the CLI (start-up time), never to dodge a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"tiva_bench/core": ("core", 1), "metrics": ("metrics", 2), "models": ("models", 2),
           "baselines": ("baselines", 3), "reports": ("reports", 3), "tiva_bench": ("orchestration", 4)}
TARGETS = {"tiva_bench.core": ("core", 1), "tiva_bench.metrics": ("metrics", 2), "tiva_bench.models": ("models", 2),
           "tiva_bench.baselines": ("baselines", 3), "tiva_bench.reports": ("reports", 3), "tiva_bench": ("orchestration", 4)}
LAZY_PROJECT_IMPORTS_ALLOWED = {"tiva_bench/cli.py"}


def _component_of_file(path: Path) -> tuple[str, int]:
    rel = path.relative_to(REPO).as_posix()
    for folder in sorted(FOLDERS, key=len, reverse=True):
        if rel.startswith(folder + "/"):
            return FOLDERS[folder]
    raise AssertionError(f"{rel} is in no known layer")


def _component_of_module(name: str) -> tuple[str, int] | None:
    for prefix in sorted(TARGETS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return TARGETS[prefix]
    return None


def _imports(tree: ast.AST):
    """(module name, line, inside a function?) for every import in the file."""
    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, in_function
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module, child.lineno, in_function
                for alias in child.names:  # "from tiva_bench import metrics" names a package
                    yield f"{child.module}.{alias.name}", child.lineno, in_function
            yield from visit(child, nested)
    yield from visit(tree, False)


def _source_files():
    for folder in ("tiva_bench", "metrics", "models", "baselines", "reports"):
        yield from sorted((REPO / folder).rglob("*.py"))


def _violations(path: Path) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    component, floor = _component_of_file(path)
    out = []
    for name, line, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if name.split(".")[0] in {"metrics", "models", "baselines", "reports"}:
            out.append(f"{rel}:{line} imports the generic top-level name {name!r}; use tiva_bench.{name}")
            continue
        target = _component_of_module(name)
        if target is None or (name == "tiva_bench" and component != "orchestration"):
            if name == "tiva_bench" and component != "orchestration":
                out.append(f"{rel}:{line} imports the top package 'tiva_bench' from {component}")
            continue
        if target[0] == "orchestration" and name.split(".")[-1] == "__version__":
            continue
        if target[0] != component and target[1] >= floor:
            out.append(f"{rel}:{line} ({component}, floor {floor}) imports {name} ({target[0]}, floor {target[1]})")
        if in_function and rel not in LAZY_PROJECT_IMPORTS_ALLOWED and target[0] != component:
            out.append(f"{rel}:{line} imports project module {name} inside a function (move it to the top)")
    return out


def test_every_source_file_has_a_layer():
    for path in _source_files():
        _component_of_file(path)


def test_imports_only_point_down():
    problems = [v for path in _source_files() for v in _violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("from tiva_bench.runner import score_folders\n", "imports tiva_bench.runner"),
    ("import metrics\n", "generic top-level name"),
    ("def f():\n    from tiva_bench.core.errors import ConfigError\n", "inside a function"),
])
def test_the_checker_catches_violations(tmp_path, source, expected, monkeypatch):
    """The rule test itself can fail: a metrics module that imports upward is reported."""
    fake = REPO / "metrics" / "_layer_probe_tmp.py"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source if self == fake else Path.read_bytes(self).decode())
    found = _violations(fake)
    if "inside a function" in expected:  # metrics importing core is fine at the top, not lazily
        assert any(expected in v for v in found), found
    else:
        assert any(expected in v for v in found), found


def test_sync_only_workers_import_no_torch():
    """Clip-scoring workers load this module (and the CLI's): neither may pull in torch."""
    import subprocess
    import sys

    code = ("import sys, tiva_bench.clip_scoring, tiva_bench.cli, tiva_bench.runner, tiva_bench.extract\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
