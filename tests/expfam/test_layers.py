"""The package's two floors: the mathematics never imports the experiment machinery, and no module cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("expfam", "interactions", "objectives", "cli")
#: Floor 2: the experiment machinery, and the scikit-learn adapter that trains through it.
#: (``expfam/__init__`` serves ``expfam.load_run`` lazily through ``importlib`` in its module
#: ``__getattr__``: that one named bridge is the facade's, and ``import expfam`` stays floor 1,
#: which test_trained.py checks by importing it in a fresh interpreter.)
FLOOR_TWO = ("expfam.experiment", "expfam.sklearn")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports, at top level or inside functions (lazy imports count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for package in PACKAGES for p in (SRC / package).rglob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def test_floor_one_never_imports_the_experiment_machinery() -> None:
    offenders = {
        name: sorted(m for m in deps if m.startswith(FLOOR_TWO))
        for name, deps in _graph().items()
        if name.startswith("expfam") and not name.startswith(FLOOR_TWO)
    }
    offenders = {name: deps for name, deps in offenders.items() if deps}
    assert not offenders, f"floor-1 modules import floor 2: {offenders}"


#: The console-script launcher checks for package-name clashes, then imports the command line.
LAUNCHER = {"expfam.__main__": {"cli.app", "cli.app.main"}}


def test_core_never_imports_builtin_plugins_by_name() -> None:
    offenders = {
        name: sorted(
            m
            for m in deps
            if m.split(".")[0] in {"interactions", "objectives", "cli"} and m not in LAUNCHER.get(name, set())
        )
        for name, deps in _graph().items()
        if name.startswith("expfam")
    }
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("package", ["expfam.experiment", "expfam"])
def test_no_import_cycle(package: str) -> None:
    graph = {n: {d for d in deps if d.startswith(package)} for n, deps in _graph().items() if n.startswith(package)}
    # Package __init__ modules re-export their children; an edge child -> parent package is not a cycle of logic.
    graph = {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
