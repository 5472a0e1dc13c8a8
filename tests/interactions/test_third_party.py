"""A third-party block plugin (examples/third_party_block) works like a built-in.

The example package registers the block ``xy_gated`` and the block set ``gated``
through the ``expfam`` entry-point group. In process it is registered with
``build_registry(extra_plugins=...)``; the slow test reads the package pip-installed into a
folder (`example_plugins_site`, tests/conftest.py, once per test run) and checks, in a fresh
interpreter, that the installed entry point is discovered and passes the identity kit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import jax
import pytest

from expfam.builder import build_model
from expfam.plugins import build_registry
from expfam.testing import check_block, check_model, random_model_params, random_observations

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "third_party_block"


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    """The example's plugin module, imported from its source tree (no installation)."""
    sys.path.insert(0, str(PACKAGE / "src"))
    try:
        from gated_block import plugin as module
    finally:
        sys.path.remove(str(PACKAGE / "src"))
    return module


def test_plugin_registers_its_block_and_block_set(plugin: ModuleType) -> None:
    registry = build_registry([plugin])
    assert "xy_gated" in registry.names("blocks")
    assert registry.block_set("gated") == ("xy", "xy_gated")
    assert registry.entries["blocks"]["xy_gated"].provider != registry.entries["blocks"]["xy"].provider


def test_plugin_block_passes_the_identity_kit(plugin: ModuleType) -> None:
    registry = build_registry([plugin])
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 3},
        data_dim=3,
        n_latent=2,
        n_clusters=3,
        blocks=["xy", "xy_gated"],
        registry=registry,
    )
    assert model.block_names == ("xy", "xy_gated")
    block = model.blocks[1]
    assert check_block(block, key=jax.random.key(0))
    params = random_model_params(model, jax.random.key(1))
    assert check_model(model, params, random_observations(model.observable, 1, 3), key=jax.random.key(2), n_samples=0)


CHECK = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    from expfam.builder import build_model
    from expfam.plugins import get_registry
    from expfam.testing import check_model, random_model_params, random_observations

    registry = get_registry()
    assert "xy_gated" in registry.names("blocks"), registry.names("blocks")
    assert registry.block_set("gated") == ("xy", "xy_gated")
    print("provider:", registry.entries["blocks"]["xy_gated"].provider)
    model = build_model(observable="binomial", observable_options={"n_trials": 3},
                        data_dim=3, n_latent=2, n_clusters=3, blocks="gated")
    params = random_model_params(model, jax.random.key(3))
    check_model(model, params, random_observations(model.observable, 3, 3), key=jax.random.key(4))
    print("kit: ok")
    """
)


@pytest.mark.slow
def test_installed_plugin_is_discovered_through_its_entry_point(
    example_plugins_site: Path, example_plugins_environment: dict[str, str]
) -> None:
    assert list(example_plugins_site.glob("expfam_gated_block-*.dist-info"))
    environment = example_plugins_environment
    environment.pop("JAX_ENABLE_X64", None)
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "provider: expfam-gated-block (gated_block)" in result.stdout
    assert "kit: ok" in result.stdout
