"""The plugin manager: loads ``expfam`` entry points and looks components up by name.

A :class:`Registry` is built once (lazily, on first use) from every plugin
registered under the ``expfam`` entry-point group, plus any plugin objects
passed in explicitly. Look-ups are by name; an unknown name raises
:class:`~expfam.errors.UnknownNameError` listing the registered names, and two
plugins registering one name raise :class:`~expfam.errors.DuplicateNameError`
naming both providers.

Example:
    >>> from expfam.plugins import get_registry
    >>> get_registry().family("binomial").name
    'binomial'
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from expfam import hookspecs
from expfam.errors import DuplicateNameError, UnknownNameError

KINDS: tuple[str, ...] = ("families", "blocks", "block_sets", "objectives", "datasets")
_KIND_LABEL = {
    "families": "family",
    "blocks": "interaction block",
    "block_sets": "block set",
    "objectives": "objective",
    "datasets": "dataset",
}


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, the object, and who provided it."""

    name: str
    value: Any
    provider: str


@dataclass
class Registry:
    """Components of every kind, by name, with their providers."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def add(self, kind: str, name: str, value: Any, provider: str) -> None:
        """Register ``value`` under ``name``; a second provider of a name is an error."""
        table = self.entries[kind]
        if name in table:
            first = table[name].provider
            raise DuplicateNameError(
                f"two plugins register the {_KIND_LABEL[kind]} {name!r}: {first!r} and {provider!r}; "
                f"uninstall one of them or rename the {_KIND_LABEL[kind]} in one plugin",
                offending=(first, provider),
            )
        table[name] = Entry(name, value, provider)

    def names(self, kind: str) -> list[str]:
        """Sorted registered names of one kind."""
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Any:
        """The component ``name`` of ``kind``, or an error listing the registered names."""
        table = self.entries[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "(none)"
            raise UnknownNameError(
                f"unknown {_KIND_LABEL[kind]} {name!r}; registered: {known}. "
                f"Check the spelling, or install the plugin that provides it",
                offending=name,
            )
        return table[name].value

    def family(self, name: str) -> Any:
        """The family class registered as ``name``."""
        return self.get("families", name)

    def block(self, name: str) -> Any:
        """The interaction-block class registered as ``name``."""
        return self.get("blocks", name)

    def block_set(self, name: str) -> tuple[str, ...]:
        """The block names of the block set ``name``."""
        return tuple(self.get("block_sets", name))

    def objective(self, name: str) -> Any:
        """The objective registered as ``name``."""
        return self.get("objectives", name)

    def dataset(self, name: str) -> Any:
        """The dataset loader registered as ``name``."""
        return self.get("datasets", name)


def _provider_names(manager: pluggy.PluginManager) -> dict[int, str]:
    names: dict[int, str] = {}
    for plugin, dist in manager.list_plugin_distinfo():
        names[id(plugin)] = f"{dist.project_name} ({manager.get_name(plugin)})"
    return names


def _items(kind: str, result: Any) -> Iterable[tuple[str, Any]]:
    if kind == "block_sets":
        return ((str(name), tuple(blocks)) for name, blocks in dict(result).items())
    return ((item.name, item) for item in result)


def build_registry(extra_plugins: Sequence[object] = (), *, load_entry_points: bool = True) -> Registry:
    """Build a registry from the ``expfam`` entry points and ``extra_plugins``.

    Args:
        extra_plugins: plugin modules or objects to register besides the entry points
            (used by tests and by programs that compose components in code).
        load_entry_points: load the installed ``expfam`` entry points.

    Returns:
        A registry holding every component, with providers recorded for errors.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if load_entry_points:
        manager.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        manager.register(plugin)
    providers = _provider_names(manager)
    registry = Registry()
    for kind in KINDS:
        caller = getattr(manager.hook, f"expfam_{kind}")
        for impl in caller.get_hookimpls():
            provider = providers.get(id(impl.plugin), impl.plugin_name)
            result = impl.function()
            if result is None:
                continue
            for name, value in _items(kind, result):
                registry.add(kind, name, value, provider)
    return registry


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry of installed plugins (built on first call)."""
    return build_registry()


def describe(registry: Registry) -> Mapping[str, list[tuple[str, str]]]:
    """``{kind: [(name, provider), ...]}`` for listing what is installed."""
    return {kind: [(e.name, e.provider) for _, e in sorted(registry.entries[kind].items())] for kind in KINDS}
