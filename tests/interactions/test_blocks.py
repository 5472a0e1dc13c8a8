"""The interaction-block contract (MODEL.md §3) for every registered block.

Each block must satisfy ``s·L_b(t) = L_bᵀ(s)·t`` for observable statistics ``s``
and latent statistics ``t`` (``s_Z(z)`` of every enumerated state, and arbitrary
pytrees, since ``L_b`` is linear), be linear, and give the same offsets at
sampled states as at their statistics. Tolerances are those of
`expfam.testing.block_checks` (float64 roundoff).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expfam.block import ClusterAffine, InteractionBlock, LatentStatistics, register_block
from expfam.plugins import get_registry
from expfam.testing import (
    block_mixture,
    check_block,
    check_block_adjointness,
    check_cluster_affine_matches_offset,
    check_offset_matches_statistics,
    enumerate_states,
    latent_statistics,
)
from expfam.testing._assertions import assert_close
from interactions.xk import ClusterBias
from interactions.xy import LatentCoupling
from interactions.xyk import ClusterCoupling

REGISTRY = get_registry()
BLOCK_NAMES = REGISTRY.names("blocks")


def make(name: str, data_dim: int = 3, n_latent: int = 2, n_clusters: int = 3) -> InteractionBlock:
    return REGISTRY.block(name)(observable_size=data_dim, latent_size=n_latent, n_clusters=n_clusters)


@pytest.mark.parametrize("name", BLOCK_NAMES)
@settings(max_examples=3, deadline=None)
@given(
    data_dim=st.integers(1, 4),
    n_latent=st.integers(1, 3),
    n_clusters=st.integers(2, 3),
    seed=st.integers(0, 2**16),
)
def test_block_contract(name: str, data_dim: int, n_latent: int, n_clusters: int, seed: int) -> None:
    """Adjointness, linearity and offsets at every enumerated state, for random shapes and parameters."""
    assert check_block(make(name, data_dim, n_latent, n_clusters), key=jax.random.key(seed))


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_block_is_registered_under_its_name_and_has_the_abstract_members(name: str) -> None:
    """The registry name is the class's ``name``; the block is an InteractionBlock and a static pytree."""
    block = make(name)
    assert isinstance(block, InteractionBlock) and block.name == name
    assert jax.tree.leaves(block) == []  # static: no array leaves, so jit sees it as a constant
    assert hash(block) == hash(make(name))
    shape = jax.eval_shape(block.init, jax.random.key(0)).shape
    assert shape == block.param_shape()


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_offsets_at_many_sampled_states(name: str) -> None:
    """Offsets at 257 random states (unsorted clusters, many per cluster) match offset_from_statistics."""
    block = make(name, data_dim=4, n_latent=3, n_clusters=3)
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=block.param_shape()))
    y = jnp.asarray(rng.integers(0, 2, size=(257, 3)).astype(float))
    k = jnp.asarray(rng.integers(0, 3, size=257))
    assert check_offset_matches_statistics(block, params, y, k)


def test_builtin_block_formulas() -> None:
    """xy: W y; xyk: V[k−1] y (0 at k = 0); xk: U[:, k−1] (0 at k = 0); adjoints Wᵀs, Vᵀs, Uᵀs."""
    data_dim, n_latent, n_clusters = 3, 2, 3
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(data_dim, n_latent))
    cluster_weights = rng.normal(size=(n_clusters - 1, data_dim, n_latent))
    biases = rng.normal(size=(data_dim, n_clusters - 1))
    y = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    k = np.array([0, 1, 2])
    xy = LatentCoupling(data_dim, n_latent, n_clusters)
    xyk = ClusterCoupling(data_dim, n_latent, n_clusters)
    xk = ClusterBias(data_dim, n_latent, n_clusters)
    assert_close("xy offset", xy.offset(jnp.asarray(weights), jnp.asarray(y), jnp.asarray(k)), y @ weights.T)
    expected = np.stack([np.zeros(data_dim), cluster_weights[0] @ y[1], cluster_weights[1] @ y[2]])
    assert_close(
        "xyk offset", jax.jit(xyk.offset)(jnp.asarray(cluster_weights), jnp.asarray(y), jnp.asarray(k)), expected
    )
    expected = np.stack([np.zeros(data_dim), biases[:, 0], biases[:, 1]])
    assert_close("xk offset", xk.offset(jnp.asarray(biases), jnp.asarray(y), jnp.asarray(k)), expected)
    s = rng.normal(size=(2, data_dim))
    assert_close("xy adjoint", xy.adjoint(jnp.asarray(weights), jnp.asarray(s))["b_y"], s @ weights)
    assert_close(
        "xyk adjoint",
        xyk.adjoint(jnp.asarray(cluster_weights), jnp.asarray(s))["W_yk"],
        np.einsum("jdn,bd->bnj", cluster_weights, s),
    )
    assert_close("xk adjoint", xk.adjoint(jnp.asarray(biases), jnp.asarray(s))["b_k"], s @ biases)
    assert set(xy.adjoint(jnp.asarray(weights), jnp.asarray(s))) == {"b_y"}
    assert set(xyk.adjoint(jnp.asarray(cluster_weights), jnp.asarray(s))) == {"W_yk"}
    assert set(xk.adjoint(jnp.asarray(biases), jnp.asarray(s))) == {"b_k"}


def test_block_sets_name_registered_blocks() -> None:
    """hierarchical = (xy), full = (xy, xyk, xk), and every set lists registered blocks only."""
    assert REGISTRY.block_set("hierarchical") == ("xy",)
    assert REGISTRY.block_set("full") == ("xy", "xyk", "xk")
    for name in REGISTRY.names("block_sets"):
        assert set(REGISTRY.block_set(name)) <= set(BLOCK_NAMES), name


# --------------------------------------------------------------- negative controls
@final
@register_block
@dataclass(frozen=True)
class TransposedAdjoint(InteractionBlock):
    """Wrong on purpose: ``L(z) = W y`` but the adjoint adds ``W s`` through the wrong index order."""

    name: ClassVar[str] = "transposed_adjoint"

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.latent_size)

    def init(self, key: jax.Array) -> jax.Array:
        return jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: jax.Array, statistics: LatentStatistics) -> jax.Array:
        return params @ statistics["b_y"]

    def offset(self, params: jax.Array, y: jax.Array, k: jax.Array) -> jax.Array:
        return y @ params.T

    def adjoint(self, params: jax.Array, statistic: jax.Array) -> LatentStatistics:
        square = params[: self.latent_size, : self.latent_size]
        return {"b_y": statistic[:, : self.latent_size] @ square.T}


@final
@register_block
@dataclass(frozen=True)
class ShiftedClusters(InteractionBlock):
    """Wrong on purpose: the sampled-state offset uses column ``k`` instead of ``k − 1`` of ``U``."""

    name: ClassVar[str] = "shifted_clusters"

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.n_clusters - 1)

    def init(self, key: jax.Array) -> jax.Array:
        return jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: jax.Array, statistics: LatentStatistics) -> jax.Array:
        return params @ statistics["b_k"]

    def offset(self, params: jax.Array, y: jax.Array, k: jax.Array) -> jax.Array:
        columns = jnp.concatenate([params.T, jnp.zeros((1, self.observable_size))], axis=0)
        return columns[k]

    def adjoint(self, params: jax.Array, statistic: jax.Array) -> LatentStatistics:
        return {"b_k": statistic @ params}


def test_kit_rejects_a_wrong_adjoint() -> None:
    block = TransposedAdjoint(observable_size=3, latent_size=3, n_clusters=2)
    with pytest.raises(AssertionError, match="s·L_b\\(t\\) = L_bᵀ\\(s\\)·t"):
        check_block(block, key=jax.random.key(0))


def test_kit_rejects_offsets_that_disagree_with_the_statistics() -> None:
    block = ShiftedClusters(observable_size=3, latent_size=2, n_clusters=3)
    with pytest.raises(AssertionError, match="offset at sampled states"):
        check_block(block, key=jax.random.key(0))


def test_kit_rejects_an_adjoint_entry_of_the_wrong_shape() -> None:
    """An adjoint that forgets the batch axis is named with the entry and the expected shape."""
    block = make("xy")
    mixture = block_mixture(block)
    y, k = enumerate_states(mixture)

    class Unbatched:
        name = "unbatched"
        observable_size, latent_size, n_clusters = 3, 2, 3
        offset_from_statistics = staticmethod(block.offset_from_statistics)

        def adjoint(self, params: jax.Array, statistic: jax.Array) -> LatentStatistics:
            return {"b_y": (statistic @ params).sum(axis=0)}

        def __hash__(self) -> int:
            return 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Unbatched)

    params = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2)))
    statistic = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)))
    with pytest.raises(AssertionError, match="adjoint entry 'b_y' has shape"):
        check_block_adjointness(Unbatched(), params, statistic, latent_statistics(mixture, y, k))  # type: ignore[arg-type]


@final
@register_block
@dataclass(frozen=True)
class MisstatedAffine(InteractionBlock):
    """A correct ``xyk``-like block whose ``cluster_affine`` form names the wrong cluster's matrix."""

    name: ClassVar[str] = "misstated_affine"
    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.n_clusters - 1, self.observable_size, self.latent_size)

    def init(self, key: jax.Array) -> jax.Array:
        return jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: jax.Array, statistics: LatentStatistics) -> jax.Array:
        return jnp.einsum("jdn,nj->d", params, statistics["W_yk"])

    def offset(self, params: jax.Array, y: jax.Array, k: jax.Array) -> jax.Array:
        padded = jnp.concatenate([jnp.zeros((1, *params.shape[1:])), params], axis=0)
        return jnp.einsum("sdn,sn->sd", padded[k], y)

    def adjoint(self, params: jax.Array, statistic: jax.Array) -> LatentStatistics:
        return {"W_yk": jnp.einsum("jdn,bd->bnj", params, statistic)}

    def cluster_affine(self, params: jax.Array) -> ClusterAffine:
        return ClusterAffine(per_cluster=params[::-1])  # clusters in reverse: wrong for K ≥ 3


def test_kit_checks_the_cluster_affine_form() -> None:
    """The fused training path uses ``cluster_affine``; a form that disagrees with ``offset`` is named."""
    with pytest.raises(AssertionError, match="cluster_affine form at sampled states = offset"):
        check_block(MisstatedAffine(observable_size=3, latent_size=2, n_clusters=3), key=jax.random.key(0))
    assert check_cluster_affine_matches_offset(
        make("xyk"), jnp.ones((2, 3, 2)), *enumerate_states(block_mixture(make("xyk")))
    )
