"""The plugin manager: loads `expfam` entry points and looks components up by name.

A [`Registry`][expfam.plugins.Registry] is built once (lazily, on first use) from every plugin
registered under the `expfam` entry-point group, plus any plugin objects
passed in explicitly. Look-ups are by name; an unknown name raises
[`UnknownNameError`][expfam.errors.UnknownNameError] listing the registered names, and two
plugins registering one name raise [`DuplicateNameError`][expfam.errors.DuplicateNameError]
naming both providers.

Each entry point is loaded on its own: a plugin that fails to import, fails
pluggy's validation or raises from a hook is recorded as a
[`PluginFailure`][expfam.plugins.PluginFailure] in `Registry.failures`, skipped and reported with
`warnings.warn` (a [`PluginWarning`][expfam.errors.PluginWarning]), so one broken
third-party package cannot take down every command. One of expfam's own plugins
that fails raises [`PluginLoadError`][expfam.errors.PluginLoadError] instead:
without it nothing works. When the cause is a module of the same name earlier on
`sys.path` (say `objectives.py` in the working directory), the message names that
file and says to rename it. [`package_clashes`][expfam.plugins.package_clashes] names another distribution
that installs one of expfam's top-level packages, or a file that shadows one.

Examples:
    >>> from expfam.plugins import get_registry
    >>> get_registry().family("binomial").name
    'binomial'
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from expfam import hookspecs
from expfam.errors import DuplicateNameError, PluginLoadError, PluginWarning, UnknownNameError

KINDS: tuple[str, ...] = ("families", "blocks", "block_sets", "objectives", "datasets", "executors", "trackers")
_KIND_LABEL = {
    "families": "family",
    "blocks": "interaction block",
    "block_sets": "block set",
    "objectives": "objective",
    "datasets": "dataset",
    "executors": "executor",
    "trackers": "tracker",
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

    def executor(self, name: str) -> Any:
        """The sweep executor registered as `name` (`--executor NAME`)."""
        return self.get("executors", name)

    def tracker(self, name: str) -> Any:
        """The tracker class registered as `name` ([`expfam.tracker`][expfam.tracker])."""
        return self.get("trackers", name)


def _is_builtin(module: str) -> bool:
    """Whether an entry point's module belongs to expfam itself (one of `OWN_PACKAGES`)."""
    return module.split(".", 1)[0] in OWN_PACKAGES


def builtin_failure_message(plugin: str, module: str, cause: str) -> str:
    r"""The message of [`PluginLoadError`][expfam.errors.PluginLoadError] for expfam's own plugin `plugin`.

    Names the file to rename when a same-named module earlier on `sys.path` shadows the
    package `module` lives in, or the other distribution that installs that package;
    otherwise says to reinstall expfam.
    """
    package = module.split(".", 1)[0]
    clashes = package_clashes([package])
    reason = clashes[0].line() if clashes else "reinstall expfam (pip install --force-reinstall expfam)"
    return f"expfam's built-in plugin {plugin!r} ({module}) could not be loaded ({cause}): {reason}"


def _check_origin(entry_name: str, module: str, plugin: object) -> None:
    """Refuse one of expfam's own plugins that was imported from outside expfam's install (a shadowing module)."""
    origin = getattr(plugin, "__file__", None)
    package = module.split(".", 1)[0]
    own = _own_root() / package
    if origin is not None and own not in Path(origin).resolve().parents:
        cause = f"{module} was imported from {origin}, not from {own}"
        raise PluginLoadError(builtin_failure_message(entry_name, module, cause), offending=origin)


def _load_entry_points(manager: pluggy.PluginManager, failures: list[PluginFailure]) -> dict[int, str]:
    """Import and register each `expfam` entry point on its own; `{id(plugin): provider}`.

    Like pluggy's `load_setuptools_entrypoints` (a name registered or blocked
    already is skipped), except that an entry point that raises on import or
    fails validation is recorded in `failures` instead of propagating, unless it
    is one of expfam's own: then [`PluginLoadError`][expfam.errors.PluginLoadError]
    says why (naming a shadowing file when there is one).
    """
    providers: dict[int, str] = {}
    for entry_point in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        dist = entry_point.dist
        distribution = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
        builtin = _is_builtin(entry_point.module)
        try:
            plugin = entry_point.load()
            if builtin:
                _check_origin(entry_point.name, entry_point.module, plugin)
            manager.register(plugin, name=entry_point.name)
        except PluginLoadError:
            raise
        except Exception as error:  # a third party's import-time failure must not stop the host
            if builtin:
                message = builtin_failure_message(entry_point.name, entry_point.module, _one_line(error))
                raise PluginLoadError(message, offending=entry_point.name) from error
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

    Raises:
        PluginLoadError: one of expfam's own plugins failed to load (the message says why
            and what to rename or reinstall). A third-party plugin that fails is skipped,
            recorded in `failures` and reported with `warnings.warn` (a
            [`PluginWarning`][expfam.errors.PluginWarning]).
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
                if _is_builtin(getattr(impl.plugin, "__name__", "")):
                    message = (
                        f"expfam's built-in plugin {impl.plugin_name!r} failed in expfam_{kind}: {_one_line(error)}"
                    )
                    raise PluginLoadError(f"{message}; reinstall expfam", offending=impl.plugin_name) from error
                failures = registry.failures
                failures.append(PluginFailure(impl.plugin_name, provider, f"expfam_{kind}: {_one_line(error)}"))
                continue
            for name, value in items:
                registry.add(kind, name, value, provider)
    for failure in registry.failures:
        warnings.warn(
            f"expfam plugin skipped: {failure.line()} (`expfam plugins` lists the failures)",
            PluginWarning,
            stacklevel=2,
        )
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
        """One line naming the package, the other distribution(s) or the shadowing file, and what to do."""
        if not self.others:  # no distribution claims it: a stray file or folder earlier on sys.path
            what = "folder" if Path(self.location).is_dir() else "file"
            return (
                f"the top-level package {self.package!r} is shadowed by the {what} {self.location}, which comes "
                f"before expfam's own {self.package!r} on sys.path (the working directory or PYTHONPATH); "
                f"rename that {what} (e.g. to my_{Path(self.location).name}): expfam needs the name {self.package!r}"
            )
        who = ", ".join(repr(o) for o in self.others)
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
