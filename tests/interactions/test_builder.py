"""The typed model builder: names resolved through the registry, sizes validated up front."""

from __future__ import annotations

import jax
import pytest

from expfam.builder import ModelSpec, build_model, resolve_blocks
from expfam.errors import ConfigurationError, ExpfamError, UnknownNameError
from expfam.families import plugin as family_plugin
from expfam.plugins import build_registry, get_registry
from interactions import plugin as interaction_plugin

REGISTRY = get_registry()
TINY = {"observable": "binomial", "observable_options": {"n_trials": 3}, "data_dim": 4, "n_latent": 2, "n_clusters": 3}


def build(**changes: object):
    return build_model(**{**TINY, **changes})


@pytest.mark.parametrize("name", REGISTRY.names("block_sets"))
def test_every_block_set_builds_its_blocks(name: str) -> None:
    model = build(blocks=name)
    assert model.block_names == REGISTRY.block_set(name)
    assert all(
        block.observable_size == 4 and block.latent_size == 2 and block.n_clusters == 3 for block in model.blocks
    )


@pytest.mark.parametrize("name", REGISTRY.names("blocks"))
def test_a_single_block_name_builds_a_one_block_model(name: str) -> None:
    assert build(blocks=name).block_names == (name,)
    assert build(blocks=[name]).block_names == (name,)


def test_block_lists_keep_their_order_and_parameter_tree() -> None:
    model = build(blocks=["xk", "xy"])
    assert model.block_names == ("xk", "xy")
    params = jax.eval_shape(model.init, jax.random.key(0))
    assert set(params) == {"prior", "likelihood", "rho_y"}
    assert set(params["likelihood"]["blocks"]) == {"xk", "xy"}
    assert params["likelihood"]["blocks"]["xy"].shape == (4, 2)
    assert params["likelihood"]["blocks"]["xk"].shape == (4, 2)
    assert params["prior"]["W_yk"].shape == (2, 2) and params["prior"]["b_k"].shape == (2,)


def test_model_spec_and_keywords_build_the_same_model() -> None:
    spec = ModelSpec(**TINY, blocks="full")
    assert build_model(spec) == build(blocks="full")


def test_normal_observable_couples_its_location_column() -> None:
    """For DiagonalNormal(D) the blocks see D coupled parameters (θ₁), not the 2·D natural parameters."""
    model = build_model(observable="normal", data_dim=3, n_latent=2, n_clusters=2, blocks="full")
    assert all(block.observable_size == 3 for block in model.blocks)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (["xy", "nope"], r"unknown interaction block 'nope'; registered: xk, xy, xyk"),
        ("fancy", r"unknown block set or block 'fancy'; block sets: full, hierarchical; blocks: xk, xy, xyk"),
        (["xy", "xk", "xy"], r"blocks \['xy'\] listed more than once"),
        ([], r"blocks is empty"),
    ],
)
def test_bad_block_lists(blocks: object, message: str) -> None:
    with pytest.raises(ExpfamError, match=message) as raised:
        build(blocks=blocks)
    assert isinstance(raised.value, ValueError)  # every expfam error is a ValueError carrying the offending object
    assert raised.value.offending is not None


def test_unknown_block_error_is_a_lookup_error() -> None:
    with pytest.raises(UnknownNameError, match="registered: xk, xy, xyk") as raised:
        build(blocks=["xz"])
    assert raised.value.offending == "xz"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_clusters": 1}, r"n_clusters must be an integer ≥ 2, got 1"),
        ({"n_latent": 0}, r"n_latent must be an integer ≥ 1, got 0"),
        ({"data_dim": -3}, r"data_dim must be an integer ≥ 1, got -3"),
        ({"data_dim": 2.5}, r"data_dim must be an integer ≥ 1, got 2.5"),
        ({"n_latent": True}, r"n_latent must be an integer ≥ 1, got True"),
    ],
)
def test_bad_sizes(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(**changes)


def test_unknown_observable_lists_the_families() -> None:
    known = ", ".join(REGISTRY.names("families"))
    with pytest.raises(UnknownNameError, match=f"unknown family 'gamma'; registered: {known}"):
        build(observable="gamma")


def test_bad_observable_option_is_named() -> None:
    with pytest.raises(
        ConfigurationError, match=r"observable family 'binomial' does not accept options \{'n_trails': 16\}"
    ):
        build(observable_options={"n_trails": 16})


def test_invalid_observable_option_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="n_trials"):
        build(observable_options={"n_trials": 0})


@pytest.mark.parametrize(
    ("latent", "message"),
    [
        (
            "normal",
            r"latent family 'normal' has parameters of shape \(2, 2\); "
            r"blocks need a latent with one natural parameter per unit, shape \(2,\)",
        ),
        ("categorical", r"latent family 'categorical' has parameters of shape \(1,\)"),
    ],
)
def test_latent_without_one_parameter_per_unit_is_refused(latent: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(latent=latent)


def test_spec_and_keywords_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="either a ModelSpec or keyword fields"):
        build_model(ModelSpec(), data_dim=3)


def test_names_are_looked_up_in_the_given_registry() -> None:
    """A registry without the built-in block plugin knows no blocks, and says so."""
    bare = build_registry([family_plugin], load_entry_points=False)
    with pytest.raises(ConfigurationError, match=r"block sets: ; blocks: "):
        build_model(**TINY, blocks="hierarchical", registry=bare)
    with_blocks = build_registry([family_plugin, interaction_plugin], load_entry_points=False)
    assert resolve_blocks("full", with_blocks) == ("xy", "xyk", "xk")
