"""The package's two floors and the upper floor's rooms: the mathematics never imports the experiment
machinery, each room imports only the rooms before it, no module re-exports another's names, and no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("expfam", "interactions", "objectives", "cli")
#: Floor 2: the experiment machinery, and the scikit-learn adapter that trains through it.
#: (``expfam/__init__`` serves no floor-2 name: ``load_run`` is ``expfam.experiment``'s, served on
#: first use by ``expfam/experiment/__init__``; test_trained.py checks both in a fresh interpreter.)
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


#: The upper floor's rooms, in import order: a module may import its own room and the rooms before it,
#: never a later one (configuration ← training ← preparation ← tracking ← run directories ← sweeps ← command line).
ROOMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("configuration", ("expfam.experiment.config", "expfam.experiment.config_text")),
    (
        "training",
        (
            "expfam.experiment.train",
            "expfam.experiment.evaluation",
            "expfam.experiment.usage",
        ),
    ),
    ("preparation", ("expfam.experiment.prepare",)),
    ("tracking", ("expfam.experiment.tracking",)),
    ("run directories", ("expfam.experiment.runs",)),
    ("sweeps", ("expfam.experiment.sweeps",)),
    ("command line", ("cli",)),
)
#: Packages that only describe their rooms (and serve names lazily through ``importlib``).
ROOM_PACKAGES = ("expfam.experiment",)


def _room(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(ROOMS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def test_every_experiment_module_is_in_a_room() -> None:
    homeless = [
        name
        for name in _graph()
        if name.startswith("expfam.experiment") and name not in ROOM_PACKAGES and _room(name) is None
    ]
    assert not homeless, f"modules in no room of ROOMS (add them where they belong): {homeless}"


def test_rooms_import_only_earlier_rooms() -> None:
    offenders = {}
    for name, deps in _graph().items():
        room = _room(name)
        if room is None:
            continue
        later = sorted(d for d in deps if (other := _room(d)) is not None and other > room)
        if later:
            offenders[f"{name} ({ROOMS[room][0]})"] = later
    assert not offenders, f"modules importing a later room: {offenders}"


@pytest.mark.parametrize(
    ("low", "above"),
    [
        ("expfam.experiment.runs", ("expfam.experiment.sweeps", "cli")),
        ("expfam.experiment.prepare", ("expfam.experiment.runs", "expfam.experiment.sweeps", "cli")),
        (
            "expfam.experiment.train",
            ("expfam.experiment.prepare", "expfam.experiment.runs", "expfam.experiment.sweeps"),
        ),
    ],
)
def test_a_room_never_imports_the_rooms_above_it(low: str, above: tuple[str, ...]) -> None:
    """Spelled out: run directories never import sweeps; training never imports preparation, runs or sweeps."""

    def under(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    offenders = {
        name: sorted(d for d in deps if any(under(d, high) for high in above))
        for name, deps in _graph().items()
        if under(name, low)
    }
    assert not {k: v for k, v in offenders.items() if v}, f"{low} imports a room above it: {offenders}"


def test_the_scikit_learn_adapter_uses_no_run_directory_or_sweep() -> None:
    deps = _graph()["expfam.sklearn"]
    assert not [d for d in deps if _room(d) is not None and _room(d) >= 3], deps  # up to preparation only


def _defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _exported(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(element) for element in node.value.elts]  # type: ignore[attr-defined]
    return []


@pytest.mark.parametrize("room", ["expfam.experiment.prepare", "expfam.experiment.runs", "expfam.experiment.sweeps"])
def test_no_module_re_exports_names_defined_elsewhere(room: str) -> None:
    """Every name a module lists in ``__all__`` is defined there: one import path per name."""
    root = SRC.joinpath(*room.split("."))
    paths = [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else sorted(root.rglob("*.py"))
    offenders = {
        _module_name(path): sorted(set(_exported(path)) - _defined_names(path))
        for path in paths
        if path.name != "__init__.py"
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders


@pytest.mark.parametrize(
    "room", ["expfam.experiment.prepare", "expfam.experiment.runs", "expfam.experiment.sweeps", "expfam.sklearn", "cli"]
)
def test_room_files_are_small_enough_to_read_in_one_sitting(room: str) -> None:
    root = SRC.joinpath(*room.split("."))
    paths = [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else sorted(root.rglob("*.py"))
    long = {str(path.relative_to(SRC)): n for path in paths if (n := len(path.read_text().splitlines())) > 450}
    assert not long, f"files over 450 lines: {long}"
