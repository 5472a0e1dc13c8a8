"""`expfam plugins`: every registered family, block, block set, objective, dataset, sweep executor and tracker, with its provider.

Plugins that failed to load are listed after them, one line each (entry-point name,
distribution, error), and so is any other distribution that installs one of
expfam's top-level packages.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from expfam.plugins import KINDS, Registry, describe, get_registry, package_clashes

TITLES = {
    "families": "families",
    "blocks": "interaction blocks",
    "block_sets": "block sets",
    "objectives": "objectives",
    "datasets": "datasets",
    "executors": "sweep executors",
    "trackers": "trackers",
}


def _detail(registry: Registry, kind: str, name: str) -> str:
    value = registry.entries[kind][name].value
    if kind == "block_sets":
        return " = " + " + ".join(value)
    description = getattr(value, "description", None)
    return f" — {description}" if isinstance(description, str) else ""


def make_command(registry: Registry | None = None) -> Callable[[], None]:
    """The `plugins` command over `registry` (default: the installed plugins)."""

    def plugins() -> None:
        """List every registered family, block, block set, objective, dataset, sweep executor and tracker with its provider."""
        current = registry or get_registry()
        listing = describe(current)
        for kind in KINDS:
            typer.echo(f"{TITLES[kind]}:")
            width = max((len(name) for name, _ in listing[kind]), default=0)
            for name, provider in listing[kind]:
                typer.echo(f"  {name.ljust(width)}  {provider}{_detail(current, kind, name)}")
        if current.failures:
            typer.echo("failed to load (skipped):")
            for failure in current.failures:
                typer.echo(f"  {failure.line()}")
        clashes = package_clashes()
        if clashes:
            typer.echo("package-name clashes:")
            for clash in clashes:
                typer.echo(f"  {clash.line()}")
        return None

    return plugins
