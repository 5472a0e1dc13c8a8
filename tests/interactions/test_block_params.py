"""A block's parameters are one array: anything else fails when the model is built, naming the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import pytest

from expfam.block import InteractionBlock, LatentStatistics, check_block_params, register_block
from expfam.builder import build_model
from expfam.errors import ConfigurationError
from expfam.families import Bernoulli, Binomial
from expfam.family import Array
from expfam.hookspecs import hookimpl
from expfam.mixture import LatentMixture
from expfam.model import Harmonium
from expfam.plugins import build_registry
from expfam.testing import check_block

RANK = 2


@dataclass(frozen=True)
class _LowRank(InteractionBlock):
    """`W = U Vᵀ` with `U` `(D, r)` and `V` `(n, r)`; subclasses differ in how `init` returns them."""

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size + self.latent_size, RANK)

    def factors(self, params: Array) -> tuple[Array, Array]:
        return params[: self.observable_size], params[self.observable_size :]

    def init(self, key: Array) -> Any:
        return 0.1 * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        u, v = self.factors(params)
        return u @ (v.T @ statistics["b_y"])

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        u, v = self.factors(params)
        return (y @ v) @ u.T

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        u, v = self.factors(params)
        return {"b_y": (statistic @ u) @ v.T}


@register_block
@dataclass(frozen=True)
class PackedLowRank(_LowRank):
    """The fix: both factors in one `(D + n, r)` array, sliced apart in the methods."""

    name: ClassVar[str] = "packed_low_rank"


@register_block
@dataclass(frozen=True)
class DictLowRank(_LowRank):
    name: ClassVar[str] = "dict_low_rank"

    def init(self, key: Array) -> Any:
        keys = jax.random.split(key)
        return {"U": jax.random.normal(keys[0], (self.observable_size, RANK)), "V": jnp.zeros((self.latent_size, RANK))}


@register_block
@dataclass(frozen=True)
class TupleLowRank(_LowRank):
    name: ClassVar[str] = "tuple_low_rank"

    def init(self, key: Array) -> Any:
        return jnp.zeros((self.observable_size, RANK)), jnp.zeros((self.latent_size, RANK))


@register_block
@dataclass(frozen=True)
class MisshapenLowRank(_LowRank):
    name: ClassVar[str] = "misshapen_low_rank"

    def init(self, key: Array) -> Any:
        return jnp.zeros((self.observable_size, RANK))


class _Plugin:
    @hookimpl
    def expfam_blocks(self) -> list[type]:
        return [PackedLowRank, DictLowRank, TupleLowRank, MisshapenLowRank]


REGISTRY = build_registry([_Plugin()])
TINY = {"observable": "binomial", "observable_options": {"n_trials": 3}, "data_dim": 3, "n_latent": 2, "n_clusters": 2}


@pytest.mark.parametrize(
    ("name", "returned"),
    [("dict_low_rank", "a dict with keys ['U', 'V']"), ("tuple_low_rank", "a tuple of 2 items")],
)
def test_a_block_whose_init_returns_a_pytree_fails_at_build_naming_block_return_and_fix(
    name: str, returned: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        build_model(**TINY, blocks=["xy", name], registry=REGISTRY)
    message = str(error.value)
    assert f"block {name!r}" in message
    assert f"init returned {returned}" in message
    assert "must be one array" in message and "pack the factors into one array" in message


def test_an_init_of_the_wrong_shape_fails_at_build_naming_both_shapes() -> None:
    with pytest.raises(ConfigurationError, match=r"shape \(3, 2\), but param_shape\(\) is \(5, 2\)"):
        build_model(**TINY, blocks="misshapen_low_rank", registry=REGISTRY)


def test_a_model_assembled_by_hand_refuses_the_pytree_block_at_init() -> None:
    block = DictLowRank(observable_size=3, latent_size=2, n_clusters=2)
    model = Harmonium(observable=Binomial(3, 3), mixture=LatentMixture(Bernoulli(2), 2), blocks=(block,))
    with pytest.raises(ConfigurationError, match=r"'dict_low_rank'.*init returned a dict with keys"):
        model.init(jax.random.key(0))


def test_the_packed_form_builds_initialises_and_passes_the_block_kit() -> None:
    model = build_model(**TINY, blocks=["xy", "packed_low_rank"], registry=REGISTRY)
    params = model.init(jax.random.key(0))
    assert params["likelihood"]["blocks"]["packed_low_rank"].shape == (5, RANK)
    check_block_params(model.blocks[1])
    assert check_block(model.blocks[1], key=jax.random.key(1))
