r"""Identity checks of interaction blocks and of whole harmoniums (docs/model.md).

A block author runs [`check_block`][expfam.testing.model_checks.check_block] on a block and
[`check_model`][expfam.testing.model_checks.check_model] on a small model that uses it. Each check states its
identity, computes both sides in float64 by enumerating every latent state `z = (y, k)`, raises
`AssertionError` naming the identity and the tolerance when they disagree, and returns `True` when it ran.
Blocks: `s·L_b(t) = L_bᵀ(s)·t` for any `s` and latent statistics `t`, linearity of `L_b`, and
`offset(y, k) = offset_from_statistics(s_Z(y, k))`. Models: `log p(x,z) − log q(z|x) = c(x) + r(z)`,
normalisation, `ELBO ≤ log p(x)` with gap `KL(q ‖ p(z|x))`, the closed-form `KL(q ‖ p(z))`, `r(0, k) = 0`.

Tolerances: exact identities accept `|difference| ≤ 1e-8·|expected| +
1e3·ε·(1 + m)`, `ε` float64's epsilon and `m` the largest magnitude among
the compared terms (about 2e-13 for terms of order 1); adjointness takes `m`
from `Σ_d |s_d|·|L_b(t)_d|` times `1 + D`.
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy.special import logsumexp

from expfam.affine import cluster_affine_dense
from expfam.block import InteractionBlock, LatentStatistics
from expfam.families.bernoulli import Bernoulli
from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.model import Harmonium, Params
from expfam.testing._assertions import EXACT_RTOL, assert_at_least, assert_close, require_x64
from expfam.testing.enumeration import data_dtype, enumerate_support, integer_support

DEFAULT_MAX_STATES: int = 4096
"""Largest number of latent states `(y, k)` the kit enumerates."""

ROUNDOFF_FACTOR: float = 1e3
"""Multiple of float64's epsilon, times `1 + magnitude`, accepted as roundoff."""

SLOTS: tuple[str, ...] = ("b_y", "W_yk", "b_k")
_data_dtype = cache(data_dtype)


def _roundoff(*values: ArrayLike) -> float:
    """Absolute tolerance for float64 roundoff among terms of these magnitudes."""
    scale = max(float(np.max(np.abs(np.asarray(v)))) for v in values)
    return ROUNDOFF_FACTOR * float(np.finfo(np.float64).eps) * (1.0 + scale)


def _block_name(block: InteractionBlock) -> str:
    sizes = f"D={block.observable_size}, n={block.latent_size}, K={block.n_clusters}"
    return f"block {block.name!r} ({type(block).__name__}, {sizes})"


# ------------------------------------------------------------------ enumeration
def block_mixture(block: InteractionBlock, latent: ExponentialFamily | None = None) -> LatentMixture:
    """The latent mixture a block couples to (Bernoulli base latent unless `latent` is given)."""
    return LatentMixture(latent or Bernoulli(block.latent_size), block.n_clusters)


def enumerate_states(model: Harmonium | LatentMixture, max_states: int = DEFAULT_MAX_STATES) -> tuple[Array, Array]:
    """Every latent state `(y, k)`: `y` of shape `(m·K, n)` and `k` of shape `(m·K,)`.

    Args:
        model: a harmonium, or a latent mixture.
        max_states: refuse supports with more states than this.

    Raises:
        ValueError: the base latent cannot be enumerated or has too many states.
    """
    mixture = model.mixture if isinstance(model, Harmonium) else model
    y, k = _enumerate_states(mixture, max_states)
    return jnp.asarray(y), jnp.asarray(k)


@cache
def _enumerate_states(mixture: LatentMixture, max_states: int) -> tuple[np.ndarray, np.ndarray]:
    points = enumerate_support(mixture.latent, max(1, max_states // mixture.n_clusters))
    if points is None:
        raise ValueError(
            f"cannot enumerate the latent states of {mixture.latent.describe()} with K={mixture.n_clusters} "
            f"in at most {max_states} states; use a smaller n_latent or a discrete latent"
        )
    points = np.asarray(points)
    y = np.tile(points, (mixture.n_clusters,) + (1,) * (points.ndim - 1))
    k = np.repeat(np.arange(mixture.n_clusters), points.shape[0])
    return y, k


def latent_statistics(mixture: LatentMixture, y: Array, k: Array) -> LatentStatistics:
    """`s_Z(y_s, k_s)` per state as a named pytree with a leading axis."""
    return jax.vmap(mixture.sufficient_statistic)(y, k)


def generator(key: Array) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key: random test inputs cost no compilation."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def random_latent_statistics(key: Array, mixture: LatentMixture, n_draws: int) -> LatentStatistics:
    """Arbitrary latent statistics (standard normal entries), not necessarily `s_Z` of any state."""
    rng = generator(key)
    return {name: jnp.asarray(rng.normal(size=(n_draws, *shape))) for name, shape in mixture.param_shapes().items()}


def random_model_params(model: Harmonium, key: Array, *, scale: float = 1.0) -> Params:
    """Parameters with every entry `scale·N(0, 1)` (`a` mapped into the observable's domain).

    Unlike [`Harmonium.init`][expfam.model.Harmonium.init], blocks and `ρ_y` are far from zero, so every
    term of the identities is exercised.
    """
    rng = generator(key)
    noisy = jax.tree.map(lambda leaf: jnp.asarray(scale * rng.normal(size=leaf.shape)), _param_template(model))
    likelihood = noisy["likelihood"]
    return {**noisy, "likelihood": {**likelihood, "a": model.observable.natural_from_unconstrained(likelihood["a"])}}


@cache
def _param_template(model: Harmonium) -> Params:
    return jax.eval_shape(model.init, jax.random.key(0))


def random_observations(family: ExponentialFamily, seed: int, batch: int) -> Array:
    """`batch` observations inside the family's support (no sampling code involved).

    Discrete supports: uniform over the support's values up to 8; continuous
    ones: standard normal entries.
    """
    rng = np.random.default_rng(seed)
    support = integer_support(family)
    shape = (batch, *family.data_shape)
    if support is None:
        return jnp.asarray(rng.normal(size=shape))
    values = support[0][support[0] <= 8]
    return jnp.asarray(rng.choice(values, size=shape), dtype=_data_dtype(family))


# ----------------------------------------------------------------------- blocks
def _assert_adjoint(block: InteractionBlock, pairings: tuple[Array, Array, Array]) -> None:
    left, right, magnitude = pairings
    atol = _roundoff(magnitude) * (1.0 + block.observable_size)
    assert_close(f"{_block_name(block)}: s·L_b(t) = L_bᵀ(s)·t", right, left, rtol=EXACT_RTOL, atol=atol)


def _assert_linear(block: InteractionBlock, linearity: tuple[Array, Array]) -> None:
    actual, expected = linearity
    name = _block_name(block)
    assert_close(f"{name}: L_b(α t₁ + t₂) = α L_b(t₁) + L_b(t₂)", actual, expected, atol=_roundoff(expected) * 10)


def _assert_offsets(block: InteractionBlock, params: Array, offsets: tuple[Array, Array]) -> None:
    actual, expected = offsets
    name = _block_name(block)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: offset has shape {actual.shape}, expected {expected.shape}")
    atol = _roundoff(expected, params) * (1.0 + block.latent_size)
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
    name = _block_name(block)
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
    """Everything [`check_block`][expfam.testing.model_checks.check_block] compares, in one compiled call: pairings, linearity, offsets."""
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
    name = _block_name(block)
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
    name = _block_name(block)
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
    atol = _roundoff(expected, params) * (1.0 + block.latent_size)
    assert_close(f"{name}: cluster_affine form at sampled states = offset", affine, expected, atol=atol)
    return True


# ----------------------------------------------------------------------- models
class ModelTable(NamedTuple):
    """Every quantity of the model identities at every enumerated state `z` (`Z` states), as NumPy.

    Attributes:
        log_joint: `log p(x_b, z)`, `(B, Z)`.
        log_posterior: `log q(z | x_b)`, `(B, Z)`.
        log_prior: `log p(z)`, `(Z,)`.
        baseline: `c(x_b)`, `(B,)`.
        residual: `r(z)`, `(Z,)`.
        log_joint_by_definition: `log p_X(x_b | a + Σ_b L_b(s_Z(z))) + log p(z)`, `(B, Z)`.
        residual_at_zero: `r(y = 0, k)` for `k = 0..K−1`.
        posterior_kl: the model's closed-form `KL(q(z|x_b) ‖ p(z))`, `(B,)`.
    """

    log_joint: Array | np.ndarray
    log_posterior: Array | np.ndarray
    log_prior: Array | np.ndarray
    baseline: Array | np.ndarray
    residual: Array | np.ndarray
    log_joint_by_definition: Array | np.ndarray
    residual_at_zero: Array | np.ndarray
    posterior_kl: Array | np.ndarray

    @property
    def elbo(self) -> np.ndarray:
        """`ELBO(x_b) = c(x_b) + Σ_z q(z | x_b) r(z)`, `(B,)`."""
        return np.asarray(self.baseline + np.exp(self.log_posterior) @ self.residual)

    @property
    def log_marginal(self) -> np.ndarray:
        """`log p(x_b) = logsumexp_z log p(x_b, z)`, `(B,)`."""
        return logsumexp(self.log_joint, axis=1)


@partial(jax.jit, static_argnums=0)
def _table(model: Harmonium, params: Params, x: Array, y: Array, k: Array) -> ModelTable:
    posterior = model.posterior(params, x)
    log_prior = jax.vmap(model.mixture.log_density, in_axes=(None, 0, 0))(params["prior"], y, k)
    theta = jax.vmap(model.observable_params_at_statistics, in_axes=(None, 0))(
        params, latent_statistics(model.mixture, y, k)
    )
    by_definition = jax.vmap(
        lambda one: jax.vmap(model.observable.log_density, in_axes=(0, None))(theta, one) + log_prior
    )(x)
    zero = jnp.zeros((model.n_clusters, *y.shape[1:]), y.dtype)
    return ModelTable(
        log_joint=jax.vmap(lambda one: model.log_joint(params, one, y, k))(x),
        log_posterior=jax.vmap(lambda p: model.posterior_log_density(p, y, k))(posterior.params),
        log_prior=log_prior,
        baseline=model.baseline(params, x, posterior),
        residual=model.residual(params, y, k),
        log_joint_by_definition=by_definition,
        residual_at_zero=model.residual(params, zero, jnp.arange(model.n_clusters)),
        posterior_kl=model.posterior_kl(params, x),
    )


def model_table(model: Harmonium, params: Params, x: Array) -> ModelTable:
    """Tabulate the model over every enumerated latent state (one jitted call per model and shape)."""
    y, k = enumerate_states(model)
    return ModelTable(*(np.asarray(value) for value in _table(model, params, jnp.asarray(x), y, k)))


def exact_elbo(model: Harmonium, params: Params, x: Array) -> Array:
    r"""`ELBO(x) = c(x) + Σ_z q(z | x) r(z)` by enumeration (differentiable), shape `(B,)`."""
    y, k = enumerate_states(model)
    return _exact_elbo(model, params, jnp.asarray(x), y, k)


@partial(jax.jit, static_argnums=0)
def _exact_elbo(model: Harmonium, params: Params, x: Array, y: Array, k: Array) -> Array:
    posterior = model.posterior(params, x)
    log_q = jax.vmap(lambda p: model.posterior_log_density(p, y, k))(posterior.params)
    return model.baseline(params, x, posterior) + jnp.exp(log_q) @ model.residual(params, y, k)


def check_posterior_normalised(model: Harmonium, params: Params, x: Array) -> bool:
    r"""`Σ_z q(z | x) = 1` for each observation and `Σ_z p(z) = 1`."""
    require_x64()
    table = model_table(model, params, x)
    log_q = table.log_posterior
    assert_close("Σ_z q(z | x) = 1", np.sum(np.exp(log_q), axis=1), np.ones(log_q.shape[0]), atol=_roundoff(log_q))
    log_prior = table.log_prior
    assert_close("Σ_z p(z) = 1", np.sum(np.exp(log_prior)), 1.0, atol=_roundoff(log_prior))
    return True


def check_joint_identity(model: Harmonium, params: Params, x: Array) -> bool:
    r"""`log p(x, z) − log q(z | x) = c(x) + r(z)` for every observation and enumerated `z`.

    Also checks `log p(x, z) = log p_X(x | θ_X(z)) + log p(z)` with `θ_X(z)` written from
    [`offset_from_statistics`][expfam.block.InteractionBlock.offset_from_statistics] (an independent path from
    the blocks' sampled-state `offset`), and `r(y = 0, k) = 0` for every `k` (the definition of the computed
    `ρ_k`).
    """
    require_x64()
    table = model_table(model, params, x)
    expected = table.baseline[:, None] + table.residual[None, :]
    tolerance = _roundoff(table.log_joint, table.log_posterior, table.baseline, table.residual)
    assert_close(
        "log p(x, z) − log q(z | x) = c(x) + r(z)", table.log_joint - table.log_posterior, expected, atol=tolerance
    )
    assert_close(
        "log p(x, z) = log p(x | θ_X(z)) + log p(z)", table.log_joint, table.log_joint_by_definition, atol=tolerance
    )
    at_zero = table.residual_at_zero
    assert_close("r(y = 0, k) = 0 (ρ_k = ψ_X(θ_X(0, k)) − ψ_X(a))", at_zero, np.zeros_like(at_zero), atol=tolerance)
    return True


def check_elbo_bound(model: Harmonium, params: Params, x: Array) -> bool:
    r"""`ELBO(x) = Σ_z q (c + r) ≤ log p(x)` and `log p(x) − ELBO(x) = KL(q(z|x) ‖ p(z|x))`.

    `log p(x) = logsumexp_z log p(x, z)` and the KL is `Σ_z q (log q − log p(z|x))`,
    both by enumeration, independently of `c` and `r`.
    """
    require_x64()
    table = model_table(model, params, x)
    log_q, elbo, log_marginal = table.log_posterior, table.elbo, table.log_marginal
    tolerance = _roundoff(table.log_joint, log_q, elbo)
    assert_at_least("log p(x) − ELBO(x)", log_marginal - elbo, 0.0, tol=tolerance)
    log_conditional = table.log_joint - log_marginal[:, None]
    kl = np.sum(np.exp(log_q) * (log_q - log_conditional), axis=1)
    assert_close("log p(x) − ELBO(x) = KL(q(z|x) ‖ p(z|x))", log_marginal - elbo, kl, atol=tolerance)
    return True


def check_posterior_kl(model: Harmonium, params: Params, x: Array) -> bool:
    r"""`posterior_kl(x) = KL(q(z|x) ‖ p(z)) = Σ_z q log(q / p)` by enumeration."""
    require_x64()
    table = model_table(model, params, x)
    log_q, log_prior = table.log_posterior, table.log_prior
    expected = np.sum(np.exp(log_q) * (log_q - log_prior), axis=1)
    assert_close("KL(q(z|x) ‖ p(z)) = Σ_z q log(q/p)", table.posterior_kl, expected, atol=_roundoff(log_q, log_prior))
    return True


@partial(jax.jit, static_argnums=(0, 4))
def _monte_carlo_elbo(model: Harmonium, params: Params, x: Array, key: Array, n_samples: int) -> tuple[Any, ...]:
    surrogate, elbo = model.elbo_terms(key, params, x, n_samples)
    posterior = model.posterior(params, x)
    y, k = model.sample_posterior(key, posterior, n_samples)
    expected = model.baseline(params, x, posterior) + jnp.mean(model.batch_residual(params, y, k), axis=1)
    return surrogate, elbo, expected


def check_monte_carlo_elbo(model: Harmonium, params: Params, x: Array, *, key: Array, n_samples: int = 8) -> bool:
    r"""The surrogate's value equals the Monte-Carlo ELBO `c(x) + mean_s r(z_s)` at the same samples."""
    require_x64()
    surrogate, elbo, expected = (np.asarray(v) for v in _monte_carlo_elbo(model, params, x, key, n_samples))
    tolerance = _roundoff(expected, surrogate)
    assert_close("Monte-Carlo ELBO = c(x) + mean_s r(z_s)", elbo, expected, atol=tolerance)
    assert_close("value of the surrogate = Monte-Carlo ELBO", surrogate, elbo, atol=tolerance)
    return True


def check_model(model: Harmonium, params: Params, x: Array, *, key: Array, n_samples: int = 8) -> bool:
    r"""Run every block check on each block of `model` and every model identity at `x`.

    Args:
        model: a small harmonium (its latent states are enumerated: keep `2ⁿ·K` small).
        params: its parameters (e.g. [`random_model_params`][expfam.testing.model_checks.random_model_params]).
        x: a batch of observations `(B,) + data_shape`.
        key: randomness for the block checks and the Monte-Carlo ELBO.
        n_samples: posterior samples of
            [`check_monte_carlo_elbo`][expfam.testing.model_checks.check_monte_carlo_elbo]; 0 leaves that
            check out (it compiles the sampler, the slowest part of the kit).
    """
    require_x64()
    for index, block in enumerate(model.blocks):
        block_key = jax.random.fold_in(key, index + 1)
        check_block(block, params["likelihood"]["blocks"][block.name], key=block_key, latent=model.latent)
    check_posterior_normalised(model, params, x)
    check_joint_identity(model, params, x)
    check_elbo_bound(model, params, x)
    check_posterior_kl(model, params, x)
    if n_samples > 0:
        check_monte_carlo_elbo(model, params, x, key=key, n_samples=n_samples)
    return True
