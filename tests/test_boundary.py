"""The architecture, enforced: layered packages import only downwards, and only suite/backends loads a framework."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import suite
from tests.conftest import REPO

# Lowest first: a package may import only from its own layer or those before it (docs/architecture.md).
LAYERS = ("core", "record", "measure", "backends", "run", "bench", "report", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax")
# The modules that exist to drive a framework; everything else must import none.
FRAMEWORK_USERS = {"suite.backends.torch_backend", "suite.backends.torch_ddp", "suite.backends.keras_backend",
                   "suite.backends.step_graph",
                   "suite.backends.bare_loops"}
RUNS_ON_IMPORT = {"suite.__main__"}
MAX_FUNCTION_LINES = 60


def all_modules() -> list[str]:
    """Every module of the suite package, found by walking it."""
    return sorted(m.name for m in pkgutil.walk_packages(suite.__path__, "suite."))


def module_path(name: str) -> Path:
    """The source file of a suite module."""
    base = REPO.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def suite_imports(name: str) -> set[str]:
    """Every suite module a module imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module_path(name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "suite":
            found |= {f"suite.{a.name}" for a in node.names} if node.module == "suite" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "suite"}
    return found


def layer(name: str) -> str | None:
    """The layer package of a module (None for the top-level entry modules)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else None


def test_every_package_is_ranked():
    packages = {layer(m) for m in all_modules()} - {None}
    assert packages == set(LAYERS), f"unranked or missing layer packages: {packages ^ set(LAYERS)}"


def test_only_entry_modules_sit_directly_in_suite():
    flat = sorted(p.name for p in (REPO / "suite").glob("*.py"))
    assert flat == ["__init__.py", "__main__.py"], flat


@pytest.mark.parametrize("module", all_modules())
def test_imports_point_down(module: str):
    here = layer(module)
    if here is None:
        return
    upward = sorted(m for m in suite_imports(module) if (dst := layer(m)) and RANK[dst] > RANK[here])
    assert not upward, f"{module} ({here}) imports from a higher layer: {upward}"


def test_package_graph_has_no_cycle():
    edges = {p: set() for p in LAYERS}
    for module in all_modules():
        if (src := layer(module)) is not None:
            edges[src] |= {d for m in suite_imports(module) if (d := layer(m)) and d != src}
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            raise AssertionError(f"package import cycle: {' -> '.join(path + [node])}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in edges[node]:
            visit(nxt, path + [node])
        seen[node] = 2

    for package in LAYERS:
        visit(package, [])


def test_functions_stay_short():
    long = []
    for module in all_modules():
        for node in ast.walk(ast.parse(module_path(module).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert not long, long


@pytest.mark.parametrize("module", sorted(set(all_modules()) - FRAMEWORK_USERS - RUNS_ON_IMPORT))
def test_module_imports_no_framework(module: str):
    code = (f"import sys, {module}; bad = [m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
