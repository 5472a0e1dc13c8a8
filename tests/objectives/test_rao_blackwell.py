"""The ``rao_blackwell_elbo`` term (cluster summed out of the score estimator).

Exact pieces (``log q(y, k | x)``, ``g(y) = Σ_k q(k|y,x) r(y,k)``) are compared with
the enumerated tables of :mod:`expfam.testing.model_checks` on tiny models
(D = 3, n = 2, K = 3, Binomial with 3 trials); Monte Carlo means accept ``|z| < 5``
with standard errors across keys, as the ``elbo`` estimator's tests do.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, make_loss
from expfam.testing import enumerate_states, exact_elbo, model_table, random_model_params, random_observations
from expfam.testing._assertions import Z_LIMIT, assert_close, assert_z_scores
from objectives.rao_blackwell import (
    cluster_marginal_residual,
    joint_log_density_table,
    rao_blackwell_elbo_terms,
    residual_depends_on_cluster,
)
from tiny_shapes import enumerated_model

BLOCK_LISTS = {"hierarchical": "hierarchical", "full": "full", "xy+xk": ["xy", "xk"]}


def tiny_model(blocks: str | list[str]) -> Harmonium:
    return enumerated_model(blocks)


def draw(model: Harmonium, seed: int, *, batch: int = 2, scale: float = 0.6) -> tuple[Params, jax.Array]:
    return random_model_params(model, jax.random.key(seed), scale=scale), random_observations(
        model.observable, seed, batch
    )


@pytest.mark.parametrize(("name", "expected"), [("hierarchical", False), ("full", True), ("xy+xk", True)])
def test_cluster_dependence_is_read_from_the_blocks(name: str, expected: bool) -> None:
    assert residual_depends_on_cluster(tiny_model(BLOCK_LISTS[name])) is expected


@pytest.mark.parametrize("name", list(BLOCK_LISTS))
def test_joint_table_and_cluster_marginal_residual_match_enumeration(name: str) -> None:
    """``log q(y,k|x)`` over all k equals the model's log density; ``g(y) = Σ_k q(k|y) r(y,k)`` from the table."""
    model = tiny_model(BLOCK_LISTS[name])
    params, x = draw(model, seed=1)
    y_all, k_all = enumerate_states(model)
    y_distinct = jnp.asarray(np.asarray(y_all)[np.asarray(k_all) == 0])  # every y once (states are ordered k-major)
    table, expected, g, residual = _table_and_residuals(model, params, x, y_distinct)
    for cluster in range(model.n_clusters):
        assert_close(f"log q(y, k={cluster} | x)", table[:, :, cluster], expected[cluster])
    weights = np.exp(np.asarray(table) - np.asarray(jax.nn.logsumexp(table, axis=-1, keepdims=True)))
    assert_close("g(y) = Σ_k q(k|y,x) r(y,k)", g, np.sum(weights * np.asarray(residual)[None], axis=-1))


@partial(jax.jit, static_argnums=0)
def _table_and_residuals(
    model: Harmonium, params: Params, x: jax.Array, y_distinct: jax.Array
) -> tuple[jax.Array, list[jax.Array], jax.Array, jax.Array]:
    """One program (not one per operation): the joint table, each cluster's log density, `g(y)` and `r(y, k)`."""
    posterior = model.posterior_params(params, x)
    table = jax.vmap(joint_log_density_table, in_axes=(None, 0, None))(model, posterior, y_distinct)
    expected = [
        jax.vmap(model.posterior_log_density, in_axes=(0, None, None))(
            posterior, y_distinct, jnp.full(len(y_distinct), cluster)
        )
        for cluster in range(model.n_clusters)
    ]
    y = jnp.broadcast_to(y_distinct, (x.shape[0], *y_distinct.shape))
    k = jnp.zeros(y.shape[:2], dtype=int)
    g = cluster_marginal_residual(model, params, y, k, table, depends_on_cluster=residual_depends_on_cluster(model))
    residual = jnp.stack(
        [model.residual(params, y_distinct, jnp.full(len(y_distinct), c)) for c in range(model.n_clusters)], axis=-1
    )
    return table, expected, g, residual


@partial(jax.jit, static_argnums=(0, 4, 5))
def gradient_draws(
    model: Harmonium, params: Params, x: jax.Array, keys: jax.Array, n_samples: int, estimator: str
) -> Params:
    """``∇ mean_batch surrogate`` for each key, with the plain (``elbo``) or the Rao–Blackwellised estimator."""

    def surrogate(p: Params, key: jax.Array) -> jax.Array:
        if estimator == "elbo":
            return jnp.mean(model.elbo_terms(key, p, x, n_samples)[0])
        return jnp.mean(rao_blackwell_elbo_terms(model, key, p, x, n_samples)[0])

    return jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(params, keys)


def flatten(tree: Params, n_keys: int) -> np.ndarray:
    return np.concatenate([np.asarray(leaf).reshape(n_keys, -1) for leaf in jax.tree.leaves(tree)], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hierarchical", "full"])
def test_rao_blackwell_gradient_is_unbiased(name: str) -> None:
    """The mean over 2000 keys of ∇ surrogate equals ∇ exact ELBO by enumeration, |z| < 5 per coordinate."""
    model = tiny_model(BLOCK_LISTS[name])
    params, x = draw(model, seed=3, batch=1, scale=0.5)
    n_keys = 2000
    estimates = flatten(gradient_draws(model, params, x, jax.random.split(jax.random.key(3), n_keys), 4, "rb"), n_keys)
    exact = jax.grad(lambda p: jnp.mean(exact_elbo(model, p, x)))(params)
    expected = np.concatenate([np.asarray(leaf).ravel() for leaf in jax.tree.leaves(exact)])
    error = estimates.std(axis=0) / np.sqrt(n_keys) + 1e-9 * (1.0 + np.abs(expected))
    assert_z_scores("mean over keys of ∇ RB surrogate vs ∇ exact ELBO", estimates.mean(axis=0), expected, error)
    # resolved far beyond the noise, so a bias (e.g. dividing the score by S) would be caught
    assert np.max(np.abs(expected) / error) > 10 * Z_LIMIT


def test_rao_blackwell_gradient_has_lower_variance_in_the_hierarchical_model() -> None:
    """Hierarchical: the RB gradient is E[plain gradient | y-samples], so its total variance is smaller.

    Also its mean agrees with the exact gradient (|z| < 5) and the ELBO value with the exact ELBO.
    """
    model = tiny_model("hierarchical")
    params, x = draw(model, seed=5, batch=1, scale=0.8)
    n_keys = 600
    keys = jax.random.split(jax.random.key(5), n_keys)
    plain = flatten(gradient_draws(model, params, x, keys, 4, "elbo"), n_keys)
    blackwell = flatten(gradient_draws(model, params, x, keys, 4, "rb"), n_keys)
    # same keys, so the same y-samples: the RB draw is the plain draw averaged over k given y
    assert blackwell.var(axis=0).sum() < plain.var(axis=0).sum()
    exact = jax.grad(lambda p: jnp.mean(exact_elbo(model, p, x)))(params)
    expected = np.concatenate([np.asarray(leaf).ravel() for leaf in jax.tree.leaves(exact)])
    error = blackwell.std(axis=0) / np.sqrt(n_keys) + 1e-9 * (1.0 + np.abs(expected))
    assert_z_scores("mean over keys of ∇ RB surrogate vs ∇ exact ELBO", blackwell.mean(axis=0), expected, error)
    values = jax.vmap(lambda key: rao_blackwell_elbo_terms(model, key, params, x, 4)[1])(keys)
    values = np.asarray(values)
    table = model_table(model, params, x)
    assert_z_scores(
        "mean over keys of the RB ELBO vs the exact ELBO",
        values.mean(axis=0),
        table.elbo,
        values.std(axis=0) / np.sqrt(n_keys) + 1e-9,
    )


def test_registered_term_matches_the_elbo_term_value_without_warmup() -> None:
    """Through ``make_loss``: both estimators report an ELBO of the same expectation; at β = 1 the
    loss is minus the surrogate, whose value is the reported ELBO."""
    model = tiny_model(["xy", "xk"])
    params, x = draw(model, seed=2)
    settings = ObjectiveSettings(kl_warmup_steps=0, n_mc_samples=4)
    loss_fn = make_loss(model, {"rao_blackwell_elbo": 1.0}, settings)
    loss, values = jax.jit(loss_fn)(params, x, jax.random.key(0), jnp.asarray(10))
    assert_close("loss = −reported ELBO at β = 1", loss, -values["rao_blackwell_elbo"])
    assert np.isfinite(float(loss))
