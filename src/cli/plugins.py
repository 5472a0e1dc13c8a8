"""``expfam plugins``: every registered family, block, block set, objective and dataset, with its provider."""

from __future__ import annotations

from collections.abc import Callable

import typer

from expfam.plugins import KINDS, Registry, describe, get_registry

TITLES = {
    "families": "families",
    "blocks": "interaction blocks",
    "block_sets": "block sets",
    "objectives": "objectives",
    "datasets": "datasets",
}


def _detail(registry: Registry, kind: str, name: str) -> str:
    value = registry.entries[kind][name].value
    if kind == "block_sets":
        return " = " + " + ".join(value)
    description = getattr(value, "description", None)
    return f" — {description}" if isinstance(description, str) else ""


def make_command(registry: Registry | None = None) -> Callable[[], None]:
    """The ``plugins`` command over ``registry`` (default: the installed plugins)."""

    def plugins() -> None:
        """List every registered family, block, block set, objective and dataset with its providing package."""
        current = registry or get_registry()
        listing = describe(current)
        for kind in KINDS:
            typer.echo(f"{TITLES[kind]}:")
            width = max((len(name) for name, _ in listing[kind]), default=0)
            for name, provider in listing[kind]:
                typer.echo(f"  {name.ljust(width)}  {provider}{_detail(current, kind, name)}")
        return None

    return plugins
