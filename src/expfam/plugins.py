"""The plugin manager: loads `expfam` entry points and looks components up by name.

A [`Registry`][expfam.plugins.Registry] is built once (lazily, on first use) from every plugin
registered under the `expfam` entry-point group, plus any plugin objects
passed in explicitly. Look-ups are by name; an unknown name raises
[`UnknownNameError`][expfam.errors.UnknownNameError] listing the registered names, and two
plugins registering one name raise [`DuplicateNameError`][expfam.errors.DuplicateNameError]
naming both providers.

Each entry point is loaded on its own: a plugin that fails to import, fails
pluggy's validation or raises from a hook is recorded as a
[`PluginFailure`][expfam.plugins.PluginFailure] in `Registry.failures` and skipped, so one broken
third-party package cannot take down every command. [`package_clashes`][expfam.plugins.package_clashes]
names another distribution that installs one of expfam's top-level packages.

Examples:
    >>> from expfam.plugins import get_registry
    >>> get_registry().family("binomial").name
    'binomial'
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
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


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used: its entry-point name, its distribution and the error, on one line."""

    plugin: str
    distribution: str
    error: str

    def line(self) -> str:
        """`<plugin> (<distribution>): <error>`, as `expfam plugins` prints it."""
        return f"{self.plugin} ({self.distribution}): {self.error}"


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {message}"


@dataclass
class Registry:
    """Components of every kind, by name, with their providers, and the plugins that failed to load."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[PluginFailure] = field(default_factory=list)

    def add(self, kind: str, name: str, value: Any, provider: str) -> None:
        """Register `value` under `name`; a second provider of a name is an error."""
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
        """The component `name` of `kind`, or an error listing the registered names."""
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
        """The family class registered as `name`."""
        return self.get("families", name)

    def block(self, name: str) -> Any:
        """The interaction-block class registered as `name`."""
        return self.get("blocks", name)

    def block_set(self, name: str) -> tuple[str, ...]:
        """The block names of the block set `name`."""
        return tuple(self.get("block_sets", name))

    def objective(self, name: str) -> Any:
        """The objective registered as `name`."""
        return self.get("objectives", name)

    def dataset(self, name: str) -> Any:
        """The dataset loader registered as `name`."""
        return self.get("datasets", name)


def _load_entry_points(manager: pluggy.PluginManager, failures: list[PluginFailure]) -> dict[int, str]:
    """Import and register each `expfam` entry point on its own; `{id(plugin): provider}`.

    Like pluggy's `load_setuptools_entrypoints` (a name registered or blocked
    already is skipped), except that an entry point that raises on import or
    fails validation is recorded in `failures` instead of propagating.
    """
    providers: dict[int, str] = {}
    for entry_point in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        dist = entry_point.dist
        distribution = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except Exception as error:  # a third party's import-time failure must not stop the host
            failures.append(PluginFailure(entry_point.name, distribution, _one_line(error)))
            continue
        providers[id(plugin)] = f"{dist.name if dist is not None else entry_point.name} ({entry_point.name})"
    return providers


def _items(kind: str, result: Any) -> Iterable[tuple[str, Any]]:
    if kind == "block_sets":
        return ((str(name), tuple(blocks)) for name, blocks in dict(result).items())
    return ((item.name, item) for item in result)


def build_registry(extra_plugins: Sequence[object] = (), *, load_entry_points: bool = True) -> Registry:
    """Build a registry from the `expfam` entry points and `extra_plugins`.

    Args:
        extra_plugins: plugin modules or objects to register besides the entry points
            (used by tests and by programs that compose components in code).
        load_entry_points: load the installed `expfam` entry points.

    Returns:
        A registry holding every component, with providers recorded for errors.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    providers = _load_entry_points(manager, registry.failures) if load_entry_points else {}
    for plugin in extra_plugins:
        manager.register(plugin)
    for kind in KINDS:
        caller = getattr(manager.hook, f"expfam_{kind}")
        for impl in caller.get_hookimpls():
            provider = providers.get(id(impl.plugin), impl.plugin_name)
            try:
                result = impl.function()
                items = [] if result is None else list(_items(kind, result))
            except Exception as error:  # a broken hook of one plugin is skipped, not fatal
                if id(impl.plugin) not in providers:
                    raise  # a plugin passed in code: its author wants the traceback
                failures = registry.failures
                failures.append(PluginFailure(impl.plugin_name, provider, f"expfam_{kind}: {_one_line(error)}"))
                continue
            for name, value in items:
                registry.add(kind, name, value, provider)
    return registry


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry of installed plugins (built on first call)."""
    return build_registry()


#: The top-level import names the `expfam` distribution installs (the design card's layout).
OWN_PACKAGES: tuple[str, ...] = ("expfam", "interactions", "objectives", "cli")


@dataclass(frozen=True)
class PackageClash:
    """Another distribution installs (or shadows) one of expfam's top-level packages."""

    package: str
    others: tuple[str, ...]
    location: str

    def line(self) -> str:
        """One line naming the package, the other distribution(s) and what to do."""
        who = ", ".join(repr(o) for o in self.others) if self.others else "another installation"
        return (
            f"the top-level package {self.package!r} is also installed by {who} (imported from {self.location}); "
            f"expfam needs its own {self.package!r}: uninstall {who} or install expfam in its own virtual environment"
        )


def _own_root() -> Path:
    """The directory holding expfam's top-level packages (`site-packages` or `src`)."""
    return Path(__file__).resolve().parent.parent


def _location(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None if spec is None or spec.origin is None else Path(spec.origin).resolve()
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def package_clashes(packages: Sequence[str] = OWN_PACKAGES, *, thorough: bool = True) -> list[PackageClash]:
    """Top-level packages of expfam that another distribution installs or shadows.

    A clash is found when the name imports from somewhere other than the directory
    that holds `expfam` (the other package comes first on `sys.path`), or, with
    `thorough`, when another distribution's metadata claims the name (the two
    share one directory). The thorough check reads every installed distribution's
    file list, which takes about a second; the quick one costs a few milliseconds.

    Args:
        packages: top-level names to check.
        thorough: also consult the metadata of every installed distribution.

    Returns:
        One [`PackageClash`][expfam.plugins.PackageClash] per clashing name, in the order given.
    """
    root = _own_root()
    claims: Mapping[str, list[str]] = metadata.packages_distributions() if thorough else {}
    clashes = []
    for package in packages:
        location = _location(package)
        others = tuple(sorted({d for d in claims.get(package, []) if d.lower() != "expfam"}))
        shadowed = location is not None and location != root / package
        if shadowed or others:
            clashes.append(PackageClash(package, others, str(location)))
    return clashes


def describe(registry: Registry) -> Mapping[str, list[tuple[str, str]]]:
    """`{kind: [(name, provider), ...]}` for listing what is installed."""
    return {kind: [(e.name, e.provider) for _, e in sorted(registry.entries[kind].items())] for kind in KINDS}
