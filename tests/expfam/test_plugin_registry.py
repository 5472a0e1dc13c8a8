"""The plugin registry (expfam.plugins): entry-point discovery, look-up errors, duplicate names.

Named test_plugin_registry.py because tests/cli/test_plugins.py already uses the basename test_plugins.
"""

from __future__ import annotations

import re
import types

import pytest

from expfam.errors import DuplicateNameError, UnknownNameError
from expfam.family import ExponentialFamily
from expfam.hookspecs import ENTRY_POINT_GROUP, hookimpl
from expfam.plugins import build_registry, get_registry

BUILTIN_FAMILIES = {"bernoulli", "binomial", "categorical", "normal", "poisson"}


class ClassNamedBinomial:
    """A stand-in family class that claims the built-in name ``binomial``."""

    name = "binomial"


class ClassNamedGamma:
    """A stand-in family class with a name no built-in uses."""

    name = "gamma_test_only"


def plugin_module(module_name: str, *classes: type) -> types.ModuleType:
    """A plugin module (what an entry point loads) whose ``expfam_families`` returns ``classes``."""
    module = types.ModuleType(module_name)

    @hookimpl
    def expfam_families() -> list[type]:
        return list(classes)

    module.expfam_families = expfam_families  # type: ignore[attr-defined]
    return module


def test_entry_point_group_is_expfam() -> None:
    assert ENTRY_POINT_GROUP == "expfam"


@pytest.mark.parametrize("name", sorted(BUILTIN_FAMILIES))
def test_builtin_family_is_discovered_through_the_entry_point(name: str) -> None:
    registry = build_registry()
    family = registry.family(name)
    assert issubclass(family, ExponentialFamily)
    assert family.name == name
    provider = registry.entries["families"][name].provider
    assert "expfam" in provider


def test_no_family_without_entry_points() -> None:
    """The built-ins are not hard-wired: without the entry points the registry is empty."""
    assert build_registry(load_entry_points=False).names("families") == []


def test_process_registry_is_built_once() -> None:
    assert get_registry() is get_registry()
    assert set(get_registry().names("families")) >= BUILTIN_FAMILIES


def test_unknown_family_lists_the_registered_names() -> None:
    registry = build_registry()
    listing = re.escape(", ".join(registry.names("families")))
    with pytest.raises(UnknownNameError, match=rf"unknown family 'bernouli'; registered: {listing}\."):
        registry.family("bernouli")


def test_unknown_name_is_a_value_error_and_a_key_error() -> None:
    with pytest.raises(ValueError, match="unknown interaction block 'nope'"):
        build_registry().block("nope")
    with pytest.raises(KeyError):
        build_registry().family("nope")


def test_extra_plugin_adds_a_family() -> None:
    registry = build_registry(extra_plugins=[plugin_module("gamma_plugin", ClassNamedGamma)])
    assert registry.family("gamma_test_only") is ClassNamedGamma
    assert registry.entries["families"]["gamma_test_only"].provider == "gamma_plugin"
    assert set(registry.names("families")) >= BUILTIN_FAMILIES


def test_plugin_reusing_a_builtin_name_names_both_providers() -> None:
    plugin = plugin_module("third_party_binomial", ClassNamedBinomial)
    with pytest.raises(DuplicateNameError, match=r"'binomial'.*expfam \(families\).*third_party_binomial") as caught:
        build_registry(extra_plugins=[plugin])
    first, second = caught.value.offending
    assert "expfam" in first and second == "third_party_binomial"


def test_two_third_party_plugins_with_one_name() -> None:
    plugins = [plugin_module("first_gamma", ClassNamedGamma), plugin_module("second_gamma", ClassNamedGamma)]
    with pytest.raises(
        DuplicateNameError,
        match=r"two plugins register the family 'gamma_test_only': '(first|second)_gamma' and '(first|second)_gamma'",
    ):
        build_registry(plugins, load_entry_points=False)


def test_a_failing_entry_point_is_recorded_and_the_others_load(monkeypatch):
    from importlib import metadata

    from expfam import plugins

    good = metadata.EntryPoint(name="families", value="expfam.families.plugin", group="expfam")
    bad = metadata.EntryPoint(name="broken", value="expfam_no_such_module.plugin", group="expfam")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [bad, good])
    with pytest.warns(plugins.PluginWarning):
        registry = plugins.build_registry()
    assert "binomial" in registry.names("families")
    [failure] = registry.failures
    assert failure.plugin == "broken" and failure.error.startswith("ModuleNotFoundError: ")
    assert failure.line().startswith("broken (unknown distribution): ModuleNotFoundError: ")


def test_no_package_clash_in_this_installation():
    from expfam.plugins import OWN_PACKAGES, package_clashes

    assert OWN_PACKAGES == ("expfam", "interactions", "objectives", "cli")
    assert package_clashes(thorough=False) == []
    assert package_clashes() == []
