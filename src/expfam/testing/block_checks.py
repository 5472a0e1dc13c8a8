r"""Identity checks of interaction blocks (docs/blocks.md).

A block author runs [`check_block`][expfam.testing.block_checks.check_block] on a block: `s·L_b(t) = L_bᵀ(s)·t`
for any `s` and latent statistics `t`, linearity of `L_b`, `offset(y, k) = offset_from_statistics(s_Z(y, k))`
and, where the block states one, its `cluster_affine` form. Each check computes both sides in float64,
raises `AssertionError` naming the identity and the tolerance when they disagree, and returns `True`
when it ran. Adjointness takes the roundoff magnitude from `Σ_d |s_d|·|L_b(t)_d|` times `1 + D`
([`roundoff`][expfam.testing.family_checks.roundoff]).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from expfam.affine import cluster_affine_dense
from expfam.block import InteractionBlock, LatentStatistics
from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.testing._assertions import EXACT_RTOL, assert_close, require_x64
from expfam.testing.family_checks import roundoff
from expfam.testing.model_inputs import (
    DEFAULT_MAX_STATES,
    SLOTS,
    block_mixture,
    block_name,
    enumerate_states,
    generator,
    latent_statistics,
    random_latent_statistics,
)


# ----------------------------------------------------------------------- blocks
def _assert_adjoint(block: InteractionBlock, pairings: tuple[Array, Array, Array]) -> None:
    left, right, magnitude = pairings
    atol = roundoff(magnitude) * (1.0 + block.observable_size)
    assert_close(f"{block_name(block)}: s·L_b(t) = L_bᵀ(s)·t", right, left, rtol=EXACT_RTOL, atol=atol)


def _assert_linear(block: InteractionBlock, linearity: tuple[Array, Array]) -> None:
    actual, expected = linearity
    name = block_name(block)
    assert_close(f"{name}: L_b(α t₁ + t₂) = α L_b(t₁) + L_b(t₂)", actual, expected, atol=roundoff(expected) * 10)


def _assert_offsets(block: InteractionBlock, params: Array, offsets: tuple[Array, Array]) -> None:
    actual, expected = offsets
    name = block_name(block)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: offset has shape {actual.shape}, expected {expected.shape}")
    atol = roundoff(expected, params) * (1.0 + block.latent_size)
    assert_close(f"{name}: offset at sampled states = offset_from_statistics(s_Z)", actual, expected, atol=atol)


def _offsets(block: InteractionBlock, params: Array, statistics: LatentStatistics) -> Array:
    return jax.vmap(lambda t: block.offset_from_statistics(params, t))(statistics)


@partial(jax.jit, static_argnums=0)
def _pairings(
    block: InteractionBlock, params: Array, statistic: Array, statistics: LatentStatistics
) -> tuple[Any, ...]:
    """`(s·L_b(t), L_bᵀ(s)·t, Σ_d |s_d||L_b(t)_d|)` for every pair; shapes are checked while tracing."""
    offsets = _offsets(block, params, statistics)
    adjoint = block.adjoint(params, statistic)
    name = block_name(block)
    unknown = sorted(set(adjoint) - set(SLOTS))
    if unknown:
        raise AssertionError(f"{name}: adjoint returned unknown entries {unknown}; expected a subset of {SLOTS}")
    batch, n_draws = statistic.shape[0], offsets.shape[0]
    if offsets.shape != (n_draws, block.observable_size):
        raise AssertionError(
            f"{name}: offset_from_statistics has shape {offsets.shape[1:]}, expected ({block.observable_size},)"
        )
    right = jnp.zeros((batch, n_draws))
    for slot, value in adjoint.items():
        expected_shape = (batch, *statistics[slot].shape[1:])
        if value.shape != expected_shape:
            raise AssertionError(f"{name}: adjoint entry {slot!r} has shape {value.shape}, expected {expected_shape}")
        right = right + jnp.einsum("b...,m...->bm", value, statistics[slot])
    return statistic @ offsets.T, right, jnp.abs(statistic) @ jnp.abs(offsets).T


def check_block_adjointness(
    block: InteractionBlock, params: Array, statistic: Array, statistics: LatentStatistics
) -> bool:
    r"""`s · L_b(t) = L_bᵀ(s) · t` for every pair of rows `s` of `statistic` and `t` of `statistics`.

    Args:
        block: the block.
        params: its parameters.
        statistic: observable statistics, shape `(B, D)`.
        statistics: latent statistics `{"b_y", "W_yk", "b_k"}` with a leading axis
            `(M,)`: `s_Z(z)` of enumerated states or arbitrary arrays (`L_b` is linear).

    The adjoint may return only the entries it touches; the others count as 0.
    """
    require_x64()
    _assert_adjoint(block, _pairings(block, params, statistic, statistics))
    return True


@partial(jax.jit, static_argnums=0)
def _linearity(
    block: InteractionBlock, params: Array, first: LatentStatistics, second: LatentStatistics, alpha: Array
) -> tuple[Array, Array]:
    combined = jax.tree.map(lambda u, v: alpha * u + v, first, second)
    expected = alpha * _offsets(block, params, first) + _offsets(block, params, second)
    return _offsets(block, params, combined), expected


def _linearity_inputs(key: Array, mixture: LatentMixture) -> tuple[LatentStatistics, LatentStatistics, Array]:
    key_first, key_second = jax.random.split(key)
    alpha = jnp.asarray(1.0 + generator(key).normal())
    return random_latent_statistics(key_first, mixture, 4), random_latent_statistics(key_second, mixture, 4), alpha


def check_block_linearity(
    block: InteractionBlock, params: Array, key: Array, mixture: LatentMixture | None = None
) -> bool:
    r"""`L_b(α t₁ + t₂) = α L_b(t₁) + L_b(t₂)` for random latent statistics and a random `α`."""
    require_x64()
    _assert_linear(block, _linearity(block, params, *_linearity_inputs(key, mixture or block_mixture(block))))
    return True


@partial(jax.jit, static_argnums=(0, 1))
def _offsets_at_states(
    block: InteractionBlock, mixture: LatentMixture, params: Array, y: Array, k: Array
) -> tuple[Array, Array]:
    stats_y = jax.vmap(mixture.latent.sufficient_statistic)(y)
    return block.offset(params, stats_y, k), _offsets(block, params, latent_statistics(mixture, y, k))


def check_offset_matches_statistics(
    block: InteractionBlock, params: Array, y: Array, k: Array, mixture: LatentMixture | None = None
) -> bool:
    r"""`offset(s_Y(y_s), k_s) = offset_from_statistics(s_Z(y_s, k_s))` per sample (under `jit`).

    Args:
        block: the block.
        params: its parameters.
        y: sampled base-latent states `(S, n)`.
        k: sampled clusters `(S,)`.
        mixture: the latent mixture (default: Bernoulli base latent).
    """
    require_x64()
    _assert_offsets(block, params, _offsets_at_states(block, mixture or block_mixture(block), params, y, k))
    return True


@partial(jax.jit, static_argnums=(0, 1))
def _block_report(
    block: InteractionBlock,
    mixture: LatentMixture,
    params: Array,
    statistic: Array,
    arbitrary: LatentStatistics,
    linearity: tuple[LatentStatistics, LatentStatistics, Array],
    y: Array,
    k: Array,
) -> tuple[Any, ...]:
    """Everything [`check_block`][expfam.testing.block_checks.check_block] compares, in one compiled call: pairings, linearity, offsets."""
    statistics = jax.tree.map(lambda u, v: jnp.concatenate([u, v]), latent_statistics(mixture, y, k), arbitrary)
    return (
        _pairings(block, params, statistic, statistics),
        _linearity(block, params, *linearity),
        _offsets_at_states(block, mixture, params, y, k),
    )


def check_block(
    block: InteractionBlock,
    params: Array | None = None,
    *,
    key: Array,
    latent: ExponentialFamily | None = None,
    n_random: int = 8,
    max_states: int = DEFAULT_MAX_STATES,
) -> bool:
    r"""Run every block check: shapes, adjointness, linearity, offsets at states.

    Adjointness is checked for `n_random` random observable statistics against
    `s_Z(z)` of every enumerated state and `n_random` arbitrary latent-statistics
    pytrees; offsets (under `jit`) at every enumerated state.

    Args:
        block: the block (e.g. `MyBlock(observable_size=3, latent_size=2, n_clusters=3)`).
        params: its parameters (default: standard normal entries, far from the small `init` values).
        key: randomness for the statistics (and the default parameters).
        latent: the base latent family (default Bernoulli).
        n_random: number of random statistics of each kind.
        max_states: largest number of enumerated states.
    """
    require_x64()
    mixture = block_mixture(block, latent)
    name = block_name(block)
    key_init, key_statistic, key_latent, key_linearity = jax.random.split(key, 4)
    initial = jax.eval_shape(block.init, key_init)
    if tuple(initial.shape) != tuple(block.param_shape()):
        raise AssertionError(f"{name}: init returned shape {initial.shape}, param_shape() says {block.param_shape()}")
    if params is None:
        params = jnp.asarray(generator(key_init).normal(size=initial.shape))
    y, k = enumerate_states(mixture, max_states)
    statistic = jnp.asarray(generator(key_statistic).normal(size=(n_random, block.observable_size)))
    arbitrary = random_latent_statistics(key_latent, mixture, n_random)
    linearity = _linearity_inputs(key_linearity, mixture)
    pairings, linear, offsets = _block_report(block, mixture, params, statistic, arbitrary, linearity, y, k)
    _assert_adjoint(block, pairings)
    _assert_linear(block, linear)
    _assert_offsets(block, params, offsets)
    check_cluster_affine_matches_offset(block, params, y, k, mixture)
    return True


def check_cluster_affine_matches_offset(
    block: InteractionBlock, params: Array, y: Array, k: Array, mixture: LatentMixture | None = None
) -> bool:
    r"""`(W + V_{k_s}) s_Y(y_s) + u_{k_s} = offset(s_Y(y_s), k_s)` where the block has a `cluster_affine` form.

    A block whose [`cluster_affine`][expfam.block.InteractionBlock.cluster_affine] returns `None` passes
    trivially (the model then never uses the form). Otherwise each part must have its shape
    (`W` `(D, n)`, `V` `(K−1, D, n)`, `u` `(K−1, D)`) and the form must give the
    block's own offset at every state: the model uses it in place of [`offset`][expfam.block.InteractionBlock.offset] in
    training ([`expfam.affine.cluster_affine_sorted`][expfam.affine.cluster_affine_sorted]).
    """
    require_x64()
    form = block.cluster_affine(params)
    if form is None:
        return True
    name = block_name(block)
    d, n, km1 = block.observable_size, block.latent_size, block.n_clusters - 1
    for part, shape in (("shared", (d, n)), ("per_cluster", (km1, d, n)), ("bias", (km1, d))):
        value = getattr(form, part)
        if value is not None and tuple(value.shape) != shape:
            raise AssertionError(f"{name}: cluster_affine().{part} has shape {tuple(value.shape)}, expected {shape}")
    stats_y = jax.vmap((mixture or block_mixture(block)).latent.sufficient_statistic)(y)
    zero = jnp.zeros((), stats_y.dtype)
    shared = form.shared if form.shared is not None else jnp.zeros((d, n)) + zero
    per_cluster = form.per_cluster if form.per_cluster is not None else jnp.zeros((km1, d, n)) + zero
    bias = form.bias if form.bias is not None else jnp.zeros((km1, d)) + zero
    affine = cluster_affine_dense(shared, per_cluster, bias, stats_y, k)
    expected = block.offset(params, stats_y, k)
    atol = roundoff(expected, params) * (1.0 + block.latent_size)
    assert_close(f"{name}: cluster_affine form at sampled states = offset", affine, expected, atol=atol)
    return True
