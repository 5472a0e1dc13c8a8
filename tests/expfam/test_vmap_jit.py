"""Families and mixtures are hashable static pytrees, and their methods jit and vmap."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.families import Bernoulli
from expfam.family import ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.plugins import get_registry
from expfam.testing.enumeration import data_dtype
from expfam.testing.strategies import smallest_size

REGISTRY = get_registry()
FAMILY_NAMES = REGISTRY.names("families")
BATCH = 4


def build(name: str, size: int | None = None) -> ExponentialFamily:
    cls = REGISTRY.family(name)
    return cls(max(2, smallest_size(cls)) if size is None else size, **cls.example_options)


def batch_of_params(family: ExponentialFamily, seed: int = 0) -> jax.Array:
    """``BATCH`` interior natural-parameter points, stacked."""
    raw = np.random.default_rng(seed).normal(size=(BATCH, *family.param_shape))
    return jax.jit(jax.vmap(family.natural_from_unconstrained))(raw)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_is_a_hashable_static_pytree(name: str) -> None:
    family = build(name)
    twin = build(name)
    assert jax.tree.leaves(family) == []
    assert family == twin and hash(family) == hash(twin)
    assert jax.tree.structure(family) == jax.tree.structure(twin)
    assert {family: 1}[twin] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        family.size = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_equal_families_share_one_compilation(name: str) -> None:
    traces: list[ExponentialFamily] = []

    @jax.jit
    def log_partition(family: ExponentialFamily, params: jax.Array) -> jax.Array:
        traces.append(family)
        return family.log_partition(params)

    family = build(name)
    params = batch_of_params(family)
    log_partition(family, params[0])
    log_partition(build(name), params[1])
    assert len(traces) == 1
    bigger = build(name, family.size + 1)
    log_partition(bigger, batch_of_params(bigger)[0])
    assert len(traces) == 2


def alternating_data(family: ExponentialFamily) -> np.ndarray:
    """``BATCH`` observations filled with 0 or 1 (inside every built-in support)."""
    fill = np.arange(BATCH) % 2
    return np.broadcast_to(fill.reshape((BATCH,) + (1,) * len(family.data_shape)), (BATCH, *family.data_shape)).astype(
        data_dtype(family)
    )


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_methods_jit_and_vmap_over_parameters_and_data(name: str) -> None:
    """One compiled call per point agrees with one compiled, vmapped call over the batch."""
    family = build(name)
    params, others, data = batch_of_params(family), batch_of_params(family, seed=1), alternating_data(family)

    @jax.jit
    def everything(theta: jax.Array, theta_other: jax.Array, x: jax.Array) -> tuple[jax.Array, ...]:
        means = family.means(theta)
        return (
            family.log_partition(theta),
            means,
            family.natural_from_means(means),
            family.fisher_information(theta),
            family.entropy(theta),
            family.negative_entropy(means),
            family.kl_divergence(theta, theta_other),
            family.log_density(theta, x),
        )

    batched = jax.jit(jax.vmap(everything))(params, others, data)
    for index in range(BATCH):
        single = everything(params[index], others[index], data[index])
        for got, expected in zip(batched, single, strict=True):
            np.testing.assert_allclose(got[index], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_sampling_traces_with_any_sample_shape(name: str) -> None:
    """``sample`` traces under jit for multi-axis shapes (values are checked by the kit's sampling test)."""
    family = build(name)
    params = batch_of_params(family)[0]
    for shape in [(), (3,), (3, 5)]:
        draws = jax.eval_shape(jax.jit(lambda key, s=shape: family.sample(key, params, s)), jax.random.key(2))
        assert draws.shape == shape + family.data_shape


def test_mixture_is_static_and_its_methods_jit_and_vmap() -> None:
    mixture = LatentMixture(Bernoulli(3), 4)
    assert jax.tree.leaves(mixture) == []
    assert hash(mixture) == hash(LatentMixture(Bernoulli(3), 4))
    generator = np.random.default_rng(3)
    batch = {
        name: jnp.asarray(generator.normal(size=(BATCH, *shape))) for name, shape in mixture.param_shapes().items()
    }

    def summary(params: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
        return (
            mixture.log_partition(params),
            mixture.cluster_probabilities(params),
            mixture.means(params)["W_yk"],
            mixture.log_density(params, jnp.ones(3), 2),
        )

    traces: list[LatentMixture] = []

    @jax.jit
    def through_argument(owner: LatentMixture, params: dict[str, jax.Array]) -> jax.Array:
        traces.append(owner)
        return owner.log_partition(params)

    batched = jax.jit(jax.vmap(summary))(batch)
    single = jax.jit(summary)
    for index in range(BATCH):
        params = {name: value[index] for name, value in batch.items()}
        for got, expected in zip(batched, single(params), strict=True):
            np.testing.assert_allclose(got[index], expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            through_argument(LatentMixture(Bernoulli(3), 4), params), batched[0][index], rtol=1e-12
        )
    assert len(traces) == 1
