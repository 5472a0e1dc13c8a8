"""Loss terms (MODEL.md §6) and their combination by :func:`expfam.objective.make_loss`.

Values are compared with exact enumeration of the latent states of a tiny
model (D = 3, n = 2, K = 3, Binomial with 3 trials); Monte Carlo values accept
``|z| < 5`` with standard errors from the enumerated moments or across keys.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.errors import ConfigurationError, UnknownNameError
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, make_loss, warmup
from expfam.plugins import get_registry
from expfam.testing import enumerate_states, model_table, random_model_params, random_observations
from expfam.testing._assertions import assert_close, assert_z_scores
from tiny_shapes import enumerated_model

REGISTRY = get_registry()
OBJECTIVES = REGISTRY.names("objectives")
SETTINGS = ObjectiveSettings(kl_warmup_steps=100, conj_warmup_steps=100, n_mc_samples=4, n_prior_samples=256)
# The terms do not depend on the blocks; xy + xk compiles faster than the full set
# (whose gradients are checked in tests/interactions/test_model_identities.py).
MODEL = enumerated_model(["xy", "xk"])


def draw(seed: int = 0, scale: float = 0.7) -> tuple[Params, jax.Array]:
    return random_model_params(MODEL, jax.random.key(seed), scale=scale), random_observations(MODEL.observable, seed, 3)


def cluster_marginals(table_log: np.ndarray) -> np.ndarray:
    """Sum probabilities over ``y`` for each cluster: ``(..., Z) → (..., K)`` (states are ordered k-major)."""
    _, k = enumerate_states(MODEL)
    k = np.asarray(k)
    probabilities = np.exp(table_log)
    return np.stack([probabilities[..., k == cluster].sum(axis=-1) for cluster in range(MODEL.n_clusters)], axis=-1)


def entropy(probabilities: np.ndarray) -> float:
    return float(-np.sum(probabilities * np.log(probabilities)))


# ------------------------------------------------------------------ every term
@pytest.fixture(scope="module")
def every_term() -> dict[str, dict[str, object]]:
    """Loss, values and gradients of each registered term alone, under one ``jit``, at two steps."""
    params, x = draw()
    losses = {name: make_loss(MODEL, {name: 1.0}, SETTINGS) for name in OBJECTIVES}

    @jax.jit
    def evaluate(params: Params, key: jax.Array, step: jax.Array) -> dict:
        results = {}
        for name, loss_fn in losses.items():
            (loss, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, key, step)
            results[name] = {"loss": loss, "values": values, "grads": grads}
        return results

    return {
        "step_0": evaluate(params, jax.random.key(1), jnp.asarray(0)),
        "step_50": evaluate(params, jax.random.key(1), jnp.asarray(50)),
    }


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_registered_term_is_finite_with_finite_gradients_under_jit(name: str, every_term: dict) -> None:
    for step in ("step_0", "step_50"):
        result = every_term[step][name]
        assert np.isfinite(float(result["loss"])), (name, step)
        assert set(result["values"]) == {name}
        assert np.isfinite(float(result["values"][name])), (name, step)
        leaves = jax.tree.leaves(result["grads"])
        assert leaves and all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves), (name, step)
    # the parameter tree of the gradient is the parameter tree
    assert jax.tree.structure(every_term["step_50"][name]["grads"]) == jax.tree.structure(draw()[0])


def test_terms_with_a_gradient_move_the_parameters(every_term: dict) -> None:
    """Every term but conjugation at step 0 (β_conj = 0) has a non-zero gradient somewhere."""
    for name in OBJECTIVES:
        grads = every_term["step_50"][name]["grads"]
        assert max(float(np.max(np.abs(np.asarray(leaf)))) for leaf in jax.tree.leaves(grads)) > 1e-6, name
    assert float(every_term["step_0"]["conjugation"]["loss"]) == 0.0


# --------------------------------------------------------------- make_loss errors
def test_unknown_term_lists_the_registered_objectives() -> None:
    known = ", ".join(OBJECTIVES)
    with pytest.raises(UnknownNameError, match=f"unknown objective 'elbow'; registered: {known}"):
        make_loss(MODEL, {"elbo": 1.0, "elbow": 1.0})


@pytest.mark.parametrize(
    ("weights", "options", "message"),
    [
        ({}, {}, "no loss terms given"),
        ({"elbo": float("nan")}, {}, "weight of loss term 'elbo' must be a finite number"),
        ({"elbo": "1"}, {}, "weight of loss term 'elbo' must be a finite number"),
        ({"elbo": 1.0}, {"rho_mode": "fitted"}, "rho_mode must be one of"),
    ],
)
def test_bad_make_loss_arguments(weights: dict, options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_loss(MODEL, weights, **options)


# ------------------------------------------------------------------------ warmup
def test_warmup_factor() -> None:
    """β = min(1, step / warmup_steps): 0 at step 0, 1 at and after warmup_steps, 1 without warmup."""
    assert float(warmup(jnp.asarray(0), 100)) == 0.0
    assert float(warmup(jnp.asarray(25), 100)) == 0.25
    assert float(warmup(jnp.asarray(100), 100)) == 1.0
    assert float(warmup(jnp.asarray(10_000), 100)) == 1.0
    assert float(warmup(jnp.asarray(0), 0)) == 1.0


STEPS = (0, 50, 100, 200)


@partial(jax.jit, static_argnums=0)
def elbo_term_by_step(model: Harmonium, params: Params, x: jax.Array, keys: jax.Array) -> jax.Array:
    """The elbo term's contribution for every key and every step of :data:`STEPS`: shape ``(keys, steps)``."""
    term = REGISTRY.objective("elbo")

    def one(key: jax.Array, step: jax.Array) -> jax.Array:
        return term(model, params, x, key, step, SETTINGS)[0]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(keys, jnp.asarray(STEPS))


def test_elbo_term_applies_kl_warmup() -> None:
    """contribution(step) = −mean_x(ELBO + (1 − β) KL(q ‖ p)) with β = min(1, step/100).

    With one key the MC ELBO is shared by every step, so the contribution is affine
    in β with slope mean KL (the model's closed form, itself checked by enumeration
    in the identity tests) and saturates at step 100. Over 1000 keys the mean is
    the exact ``L_β`` by enumeration; at β = 0 that is ``E_q[log p(x|z)]``.
    """
    params, x = draw(seed=2)
    keys = jax.random.split(jax.random.key(5), 1000)
    contributions = np.asarray(elbo_term_by_step(MODEL, params, x, keys))
    table = model_table(MODEL, params, x)
    kl = float(np.mean(table.posterior_kl))
    assert kl > 0.05  # the warmup visibly changes the loss
    at_0, at_50, at_100, at_200 = contributions.T
    assert_close("β = 1 at and after kl_warmup_steps", at_200, at_100)
    assert_close("(1 − β)·KL at step 0 is the whole KL", at_0 - at_100, np.full_like(at_0, -kl), atol=1e-10)
    assert_close("β = 0.5 at half the warmup", at_50, (at_0 + at_100) / 2, atol=1e-10)
    q = np.exp(table.log_posterior)
    reconstruction = np.mean(np.sum(q * (table.log_joint - table.log_prior), axis=1))
    assert_close("ELBO + KL = E_q[log p(x|z)]", np.mean(table.elbo + table.posterior_kl), reconstruction)
    for values, beta in ((at_0, 0.0), (at_50, 0.5), (at_100, 1.0)):
        exact = -np.mean(table.elbo + (1.0 - beta) * table.posterior_kl)
        error = values.std() / np.sqrt(len(keys))
        assert_z_scores(f"mean over keys of the elbo term at β = {beta}", values.mean(), exact, error)


# ---------------------------------------------------------------------- entropies
def test_prior_entropy_is_the_entropy_of_the_enumerated_cluster_marginal() -> None:
    params, x = draw(seed=3, scale=1.5)
    p_k = cluster_marginals(model_table(MODEL, params, x).log_prior)
    contribution, value = jax.jit(REGISTRY.objective("prior_entropy"), static_argnums=(0, 5))(
        MODEL, params, x, jax.random.key(0), jnp.asarray(0), SETTINGS
    )
    assert_close("H(p(k)) by enumeration", value, entropy(p_k))
    assert_close("prior_entropy contributes −H", contribution, -entropy(p_k))
    assert entropy(p_k) < np.log(MODEL.n_clusters) - 1e-3  # not trivially uniform


def test_posterior_entropy_is_the_entropy_of_the_mean_responsibilities() -> None:
    params, x = draw(seed=8, scale=2.5)
    q_k = cluster_marginals(model_table(MODEL, params, x).log_posterior)  # (B, K), by enumeration
    average = q_k.mean(axis=0)
    contribution, value = jax.jit(REGISTRY.objective("posterior_entropy"), static_argnums=(0, 5))(
        MODEL, params, x, jax.random.key(0), jnp.asarray(0), SETTINGS
    )
    assert_close("H(mean_x q(k|x))", value, entropy(average))
    assert_close("posterior_entropy contributes −H", contribution, -entropy(average))
    assert entropy(average) - np.mean([entropy(row) for row in q_k]) > 0.05  # H(mean) ≠ mean H here


# --------------------------------------------------------------- conjugation terms
def test_conjugation_terms_estimate_the_enumerated_residual_variances() -> None:
    """R_p ≈ Var_p[r] and R_q ≈ mean_x Var_q[r], within 5 standard errors from the enumerated moments."""
    params, x = draw(seed=6, scale=1.0)
    table = model_table(MODEL, params, x)
    big = ObjectiveSettings(conj_warmup_steps=100, n_mc_samples=20_000, n_prior_samples=20_000)

    @jax.jit
    def values(params: Params, key: jax.Array) -> tuple:
        step = jnp.asarray(50)
        prior = REGISTRY.objective("conjugation")(MODEL, params, x, key, step, big)
        posterior = REGISTRY.objective("recognition_conjugation")(MODEL, params, x, key, step, big)
        return prior, posterior

    (prior_contribution, prior_value), (_, posterior_value) = values(params, jax.random.key(7))
    assert_close("conjugation contribution = β_conj · R_p", prior_contribution, 0.5 * prior_value)

    def moments(probabilities: np.ndarray, residual: np.ndarray, n: int) -> tuple[float, float]:
        mean = probabilities @ residual
        variance = probabilities @ (residual - mean) ** 2
        fourth = probabilities @ (residual - mean) ** 4
        return float(variance), float(np.sqrt(max(fourth - variance**2, 0.0) / n))

    variance, error = moments(np.exp(table.log_prior), table.residual, big.n_prior_samples)
    assert variance > 1e-3
    assert_z_scores("R_p vs Var_p[r] by enumeration", prior_value, variance, error + variance / big.n_prior_samples)
    per_x = [moments(np.exp(row), table.residual, big.n_mc_samples) for row in table.log_posterior]
    expected = np.mean([v for v, _ in per_x])
    error = np.sqrt(np.sum([e**2 for _, e in per_x])) / len(per_x)
    assert_z_scores(
        "R_q vs mean_x Var_q[r] by enumeration", posterior_value, expected, error + expected / big.n_mc_samples
    )


# ---------------------------------------------------------------------- rho modes
def test_analytic_rho_uses_the_least_squares_fit() -> None:
    """rho_mode="analytic": the loss equals the learned-mode loss at ρ_y = the fit, and ρ_y gets no gradient."""
    params, x = draw(seed=8)
    weights = {"elbo": 1.0, "conjugation": 0.1}
    analytic = make_loss(MODEL, weights, SETTINGS, rho_mode="analytic")
    learned = make_loss(MODEL, weights, SETTINGS)
    key, step = jax.random.key(9), jnp.asarray(150)

    @jax.jit
    def compare(params: Params) -> tuple:
        fit_key = jax.random.split(key, len(weights) + 1)[-1]  # make_loss keeps the last key for the fit
        _, rho_y, _ = MODEL.fit_correction(fit_key, params, SETTINGS.n_prior_samples)
        (loss, values), grads = jax.value_and_grad(analytic, has_aux=True)(params, x, key, step)
        refit, refit_values = learned({**params, "rho_y": rho_y}, x, key, step)
        return loss, values, grads, refit, refit_values, rho_y

    loss, values, grads, refit, refit_values, rho_y = compare(params)
    assert_close("analytic loss = learned loss at the fitted ρ_y", loss, refit)
    for name in weights:
        assert_close(f"analytic {name} value = learned value at the fitted ρ_y", values[name], refit_values[name])
    assert np.all(np.asarray(grads["rho_y"]) == 0.0)
    assert any(float(np.max(np.abs(np.asarray(leaf)))) > 1e-6 for leaf in jax.tree.leaves(grads))
    # the fit is far from the parameter ρ_y, so a mode that ignored the fit would be caught
    assert float(np.max(np.abs(np.asarray(rho_y) - np.asarray(params["rho_y"])))) > 1e-2
