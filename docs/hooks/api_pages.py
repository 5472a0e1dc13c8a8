"""MkDocs hook: the API reference pages, one per package, listing every public module.

The pages are generated at build time from the source tree, so a new module
appears in the reference without editing anything here. A module is public when
no part of its dotted name starts with an underscore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

SRC = Path(__file__).resolve().parents[2] / "src"

#: page → (title, introduction, package, subpackages documented on their own pages)
PAGES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "api/expfam.md": (
        "Core: families, mixture, model, plugins",
        "The mathematics and the plug-in system: base classes, the builder, the registry, errors and metrics.",
        "expfam",
        ("expfam.families", "expfam.data", "expfam.testing", "expfam.experiment"),
    ),
    "api/families.md": ("Built-in families", "The five built-in exponential families.", "expfam.families", ()),
    "api/data.md": ("Datasets", "Dataset loaders and the count mapping.", "expfam.data", ()),
    "api/testing.md": ("Test kit", "Identity checks for plugin authors (`expfam.testing`).", "expfam.testing", ()),
    "api/experiment.md": (
        "Experiment machinery",
        "Configuration, training, evaluation, run directories, sweeps, reports and plots.",
        "expfam.experiment",
        (),
    ),
    "api/interactions.md": ("Interaction blocks", "The built-in block plugins and block sets.", "interactions", ()),
    "api/objectives.md": ("Loss terms", "The built-in loss-term plugins.", "objectives", ()),
    "api/cli.md": ("Command line", "The modules behind the `expfam` command.", "cli", ()),
}


def public_modules(package: str) -> list[str]:
    """Dotted names of ``package`` and its public submodules, sorted, package first."""
    root = SRC.joinpath(*package.split("."))
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return sorted(names, key=lambda name: (name != package, name))


def page(title: str, introduction: str, package: str, elsewhere: tuple[str, ...]) -> str:
    """The Markdown of one reference page: a ``:::`` directive per module."""
    modules = [m for m in public_modules(package) if not any(m == e or m.startswith(e + ".") for e in elsewhere)]
    lines = [f"# {title}", "", introduction, ""]
    for module in modules:
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    """Add the generated reference pages to the site's files."""
    for uri, (title, introduction, package, elsewhere) in PAGES.items():
        files.append(File.generated(config, uri, content=page(title, introduction, package, elsewhere)))
    return files
