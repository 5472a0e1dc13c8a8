"""MkDocs hook: the API reference, one page per topic, and its part of the navigation.

`TOPICS` lists the pages in navigation order, each with the modules it documents. A
page may also claim whole packages (``packages``): every public module under such a
package that no page lists goes to the page with the most specific claim, after its
listed modules. ``expfam`` itself is claimed by "Other modules", a page that exists only
while something lands there, so a new public module appears in the reference without
editing anything here. A module is public when no part of its dotted name starts with an
underscore.

A package is documented by its docstring and by what its ``__init__.py`` defines itself;
the names it re-exports are documented once, on the page of the module that defines them
(a cross-reference to ``expfam.ExponentialFamily`` still finds
``expfam.family.ExponentialFamily``).

The planning functions need no MkDocs (tests/docs/test_api_pages.py runs them).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
#: top-level packages of the distribution, documented in the reference
ROOTS = ("expfam", "interactions", "objectives", "cli")
#: the navigation entry the hook expands into the reference's pages
NAV_TITLE = "API reference"


@dataclass(frozen=True)
class Topic:
    """One reference page: where it is, what it is called and which modules it documents."""

    uri: str
    title: str
    introduction: str
    modules: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # also every unlisted public module under these
    section: str | None = None  # the navigation group it sits in, if any


TOPICS: tuple[Topic, ...] = (
    Topic(
        "api/index.md",
        "API reference",
        "Every public module of the distribution, generated from the docstrings, one page per topic.",
        ("expfam",),
    ),
    Topic(
        "api/builder.md",
        "Model builder",
        "`build_model` composes a model from plugin names; the shape rules it checks.",
        ("expfam.builder", "expfam.shapes"),
    ),
    Topic(
        "api/model.md",
        "Harmonium (the model)",
        "The model `build_model` returns, and the posterior it computes (mathematics: [model.md](../model.md)).",
        ("expfam.model", "expfam.posterior"),
    ),
    Topic(
        "api/families.md",
        "Families",
        "The exponential-family base class and the built-in families (mathematics: [families.md](../families.md)).",
        ("expfam.family", "expfam.families"),
        packages=("expfam.families",),
    ),
    Topic(
        "api/mixture.md",
        "Latent mixture",
        "The latent mixture p(y, k) ([mixture.md](../mixture.md); its KMeans cluster starts are in the training room).",
        ("expfam.mixture",),
    ),
    Topic(
        "api/blocks.md",
        "Interaction blocks",
        "The block interface, the affine maps blocks build on, and the built-in blocks ([blocks.md](../blocks.md)).",
        ("expfam.block", "expfam.affine", "interactions"),
        packages=("interactions",),
    ),
    Topic(
        "api/objectives.md",
        "Loss terms",
        "The loss-term interface and the built-in terms ([objectives.md](../objectives.md)).",
        ("expfam.objective", "objectives"),
        packages=("objectives",),
    ),
    Topic(
        "api/plugins.md",
        "Plugins and registry",
        "The hook specifications and the registry that looks plugins up by name ([plugins.md](../plugins.md)).",
        ("expfam.plugins", "expfam.hookspecs", "expfam.options"),
    ),
    Topic(
        "api/sklearn.md",
        "scikit-learn estimator",
        "`HarmoniumClustering`, a scikit-learn clusterer ([sklearn.md](../sklearn.md)).",
        ("expfam.sklearn",),
    ),
    Topic("api/metrics.md", "Metrics", "Clustering metrics ([metrics.md](../metrics.md)).", ("expfam.metrics",)),
    Topic(
        "api/errors.md", "Errors", "The exceptions expfam raises, all subclasses of `ExpfamError`.", ("expfam.errors",)
    ),
    Topic(
        "api/data.md",
        "Data",
        "Dataset loaders, splits and the count mapping ([data.md](../data.md)).",
        ("expfam.data",),
        packages=("expfam.data",),
    ),
    Topic(
        "api/testing.md",
        "Suites and family checks",
        "The test kit for plugin authors ([testing.md](../testing.md)): suites, family and mixture checks.",
        (
            "expfam.testing",
            "expfam.testing.suite",
            "expfam.testing.family_checks",
            "expfam.testing.geometry_checks",
            "expfam.testing.mixture_checks",
            "expfam.testing.sampling_checks",
        ),
        packages=("expfam.testing",),
        section="Test kit",
    ),
    Topic(
        "api/testing-model.md",
        "Model checks and references",
        "The test kit's block, model, loss-term and dataset checks, exact enumeration, SciPy references and strategies.",
        (
            "expfam.testing.block_checks",
            "expfam.testing.model_checks",
            "expfam.testing.model_inputs",
            "expfam.testing.objective_checks",
            "expfam.testing.dataset_checks",
            "expfam.testing.tracker_checks",
            "expfam.testing.enumeration",
            "expfam.testing.scipy_reference",
            "expfam.testing.strategies",
        ),
        section="Test kit",
    ),
    Topic(
        "api/experiment.md",
        "Configuration and preparation",
        "The configuration, and the checks and the one model spec every run is prepared with ([runs.md](../runs.md)).",
        ("expfam.experiment", "expfam.experiment.config", "expfam.experiment.config_text", "expfam.experiment.prepare"),
        packages=("expfam.experiment",),
        section="Experiment machinery",
    ),
    Topic(
        "api/experiment-training.md",
        "Training and evaluation",
        "The training room (optimiser, step, chunks, the one loop, cluster starts, random streams), evaluation "
        "and cluster usage ([training.md](../training.md)).",
        (
            "expfam.experiment.train",
            "expfam.experiment.train.optimizer",
            "expfam.experiment.train.step",
            "expfam.experiment.train.chunks",
            "expfam.experiment.train.loop",
            "expfam.experiment.train.divergence",
            "expfam.experiment.train.cluster_start",
            "expfam.experiment.train.streams",
            "expfam.experiment.evaluation",
            "expfam.experiment.usage",
        ),
        section="Experiment machinery",
    ),
    Topic(
        "api/experiment-runs.md",
        "Run directories and trained models",
        "Run directories: files, the one recorder, `train_run`, checkpoints, `load_run`, the results table, plots "
        "and comparisons ([runs.md](../runs.md)).",
        (
            "expfam.experiment.runs",
            "expfam.experiment.runs.atomic",
            "expfam.experiment.runs.layout",
            "expfam.experiment.runs.files",
            "expfam.experiment.runs.lock",
            "expfam.experiment.runs.recorder",
            "expfam.experiment.runs.solo",
            "expfam.experiment.runs.checkpoints",
            "expfam.experiment.runs.trained",
            "expfam.experiment.runs.table",
            "expfam.experiment.runs.health",
            "expfam.experiment.runs.compare",
            "expfam.experiment.runs.plots",
        ),
        section="Experiment machinery",
    ),
    Topic(
        "api/experiment-sweeps.md",
        "Sweeps and reports",
        "Sweep files, the plan, running trials, results, reports and plots ([sweeps.md](../sweeps.md)).",
        (
            "expfam.experiment.sweeps",
            "expfam.experiment.sweeps.spec",
            "expfam.experiment.sweeps.plan",
            "expfam.experiment.sweeps.run",
            "expfam.experiment.sweeps.workers",
            "expfam.experiment.sweeps.executor",
            "expfam.experiment.sweeps.remote",
            "expfam.experiment.sweeps.dask_executor",
            "expfam.experiment.sweeps.executor_plugin",
            "expfam.experiment.sweeps.results",
            "expfam.experiment.sweeps.report",
            "expfam.experiment.sweeps.plots",
        ),
        section="Experiment machinery",
    ),
    Topic(
        "api/tracking.md",
        "Tracking",
        "Trackers as a plugin kind, the `[track]` settings, the safe fan-out and the built-in MLflow tracker "
        "([tracking.md](../tracking.md)).",
        (
            "expfam.tracker",
            "expfam.experiment.tracking",
            "expfam.trackers",
            "expfam.trackers.mlflow_tracker",
            "expfam.trackers.plugin",
            "expfam.experiment.sweeps.tracked",
        ),
        packages=("expfam.trackers",),
        section="Experiment machinery",
    ),
    Topic(
        "api/experiment-stacking.md",
        "Stacking and devices",
        "Many trials in one program, over one or several devices ([stacking.md](../stacking.md)).",
        ("expfam.experiment.runs.group", "expfam.experiment.train.devices"),
        section="Experiment machinery",
    ),
    Topic(
        "api/cli.md",
        "Command line",
        "The modules behind the `expfam` command and its interrupt handling ([cli.md](../cli.md)).",
        ("cli", "expfam.interrupts"),
        packages=("cli",),
    ),
    Topic(
        "api/other.md",
        "Other modules",
        "Public modules not yet placed on a topic page (list them in `TOPICS` of docs/hooks/api_pages.py).",
        packages=("expfam",),
    ),
)


def public_modules(package: str, src: Path = SRC) -> list[str]:
    """Dotted names of ``package`` and its public submodules, sorted, package first."""
    root = src.joinpath(*package.split("."))
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return sorted(names, key=lambda name: (name != package, name))


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def plan(topics: tuple[Topic, ...] = TOPICS, src: Path = SRC, roots: tuple[str, ...] = ROOTS) -> dict[str, list[str]]:
    """Page URI → the modules it documents, in order; pages with no module are left out.

    Raises `ValueError` when a page lists a module that is not public (renamed or removed),
    when two pages list the same module, or when a public module has no page.
    """
    public = [module for root in roots for module in public_modules(root, src)]
    listed: dict[str, str] = {}
    for topic in topics:
        for module in topic.modules:
            if module not in public:
                raise ValueError(
                    f"{topic.uri} lists {module!r}, which is not a public module under {src}; "
                    "update TOPICS in docs/hooks/api_pages.py"
                )
            if module in listed:
                raise ValueError(f"{module!r} is listed on both {listed[module]} and {topic.uri}; keep one")
            listed[module] = topic.uri
    pages: dict[str, list[str]] = {topic.uri: list(topic.modules) for topic in topics}
    for module in public:
        if module in listed:
            continue
        claims = [(len(p), topic.uri) for topic in topics for p in topic.packages if _under(module, p)]
        if not claims:
            raise ValueError(f"no page of docs/hooks/api_pages.py claims {module!r}; add it to TOPICS")
        pages[max(claims)[1]].append(module)
    return {uri: modules for uri, modules in pages.items() if modules}


def own_members(module: str, src: Path = SRC) -> list[str] | None:
    """The public names a package's ``__init__.py`` defines itself; ``None`` for a plain module.

    A package's re-exports are documented where they are defined, so its directive lists
    only these (none: the package's docstring alone).
    """
    init = src.joinpath(*module.split("."), "__init__.py")
    if not init.is_file():
        return None
    names = []
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return [name for name in names if not name.startswith("_")]


def directive(module: str, src: Path = SRC) -> list[str]:
    """The mkdocstrings directive of one module (a package: its own members only)."""
    members = own_members(module, src)
    if members is None:
        return [f"::: {module}", ""]
    value = "false" if not members else "[" + ", ".join(members) + "]"
    return [f"::: {module}", "    options:", f"      members: {value}", ""]


def page(topic: Topic, modules: list[str], pages: dict[str, list[str]], src: Path = SRC) -> str:
    """The Markdown of one reference page; the overview also gets a table of every page."""
    lines = [f"# {topic.title}", "", topic.introduction, ""]
    if topic.uri == TOPICS[0].uri:
        lines += ["| page | what it documents |", "|---|---|"]
        for other in TOPICS[1:]:
            if other.uri in pages:
                name = Path(other.uri).name
                title = f"{other.section}: {other.title}" if other.section else other.title
                lines.append(f"| [{title}]({name}) | {other.introduction} |")
        lines.append("")
    for module in modules:
        lines += directive(module, src)
    return "\n".join(lines)


def navigation(pages: dict[str, list[str]]) -> list[Any]:
    """The reference's navigation entries, in `TOPICS` order, grouped by section."""
    entries: list[Any] = []
    for topic in TOPICS:
        if topic.uri not in pages:
            continue
        entry = {"Overview" if topic.uri == TOPICS[0].uri else topic.title: topic.uri}
        if topic.section is None:
            entries.append(entry)
            continue
        group = next((e[topic.section] for e in entries if topic.section in e), None)
        if group is None:
            group = []
            entries.append({topic.section: group})
        group.append(entry)
    return entries


def on_config(config: Any) -> Any:
    """Expand the navigation's ``API reference`` entry into the reference's pages."""
    from mkdocs.exceptions import PluginError

    nav = config["nav"] or []
    for index, entry in enumerate(nav):
        if isinstance(entry, dict) and NAV_TITLE in entry:
            nav[index] = {NAV_TITLE: navigation(plan())}
            return config
    raise PluginError(f"mkdocs.yml's nav needs an entry '{NAV_TITLE}: {TOPICS[0].uri}' (docs/hooks/api_pages.py)")


def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the site's files."""
    from mkdocs.structure.files import File

    pages = plan()
    for topic in TOPICS:
        if topic.uri in pages:
            files.append(File.generated(config, topic.uri, content=page(topic, pages[topic.uri], pages)))
    return files
