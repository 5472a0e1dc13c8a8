r"""Identity checks of interaction blocks and of whole harmoniums (docs/model.md).

A block author runs [`check_block`][expfam.testing.block_checks.check_block] on a block and
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

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.testing._assertions import assert_at_least, assert_close, require_x64
from expfam.testing.block_checks import check_block
from expfam.testing.family_checks import roundoff
from expfam.testing.model_inputs import enumerate_states, latent_statistics


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
    assert_close("Σ_z q(z | x) = 1", np.sum(np.exp(log_q), axis=1), np.ones(log_q.shape[0]), atol=roundoff(log_q))
    log_prior = table.log_prior
    assert_close("Σ_z p(z) = 1", np.sum(np.exp(log_prior)), 1.0, atol=roundoff(log_prior))
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
    tolerance = roundoff(table.log_joint, table.log_posterior, table.baseline, table.residual)
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
    tolerance = roundoff(table.log_joint, log_q, elbo)
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
    assert_close("KL(q(z|x) ‖ p(z)) = Σ_z q log(q/p)", table.posterior_kl, expected, atol=roundoff(log_q, log_prior))
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
    tolerance = roundoff(expected, surrogate)
    assert_close("Monte-Carlo ELBO = c(x) + mean_s r(z_s)", elbo, expected, atol=tolerance)
    assert_close("value of the surrogate = Monte-Carlo ELBO", surrogate, elbo, atol=tolerance)
    return True


def check_model(model: Harmonium, params: Params, x: Array, *, key: Array, n_samples: int = 8) -> bool:
    r"""Run every block check on each block of `model` and every model identity at `x`.

    Args:
        model: a small harmonium (its latent states are enumerated: keep `2ⁿ·K` small).
        params: its parameters (e.g. [`random_model_params`][expfam.testing.model_inputs.random_model_params]).
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
