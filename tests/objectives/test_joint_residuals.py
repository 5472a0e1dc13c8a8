"""Residual terms evaluated together: ``Harmonium.residual_sets`` and ``expfam.objective.evaluate_terms``.

Inside a combined loss the ``elbo`` and ``conjugation`` terms hand their sampled states to the
model in one call (one grouped product for the full model). These tests check that this changes
nothing but the cost: the same residuals, the same loss, values and gradients as each term
evaluated on its own, and a third-party residual term joins in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.builder import build_model
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings, make_loss
from expfam.plugins import Registry, get_registry
from expfam.testing import random_model_params

SETTINGS = ObjectiveSettings(kl_warmup_steps=10, conj_warmup_steps=10, n_mc_samples=3, n_prior_samples=40)


def tiny(blocks: str) -> tuple[Harmonium, Params, jax.Array]:
    model = build_model(
        observable="binomial", observable_options={"n_trials": 3}, data_dim=5, n_latent=3, n_clusters=4, blocks=blocks
    )
    params = random_model_params(model, jax.random.key(0), scale=0.8)
    x = jax.random.binomial(jax.random.key(1), 3, 0.4, (6, 5)).astype(jnp.float64)
    return model, params, x


def state_sets(model: Harmonium, params: Params, x: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    """Posterior states ``(B, S)`` and prior states ``(M,)``, as the two residual terms draw them."""
    posterior = model.posterior(params, x)
    return [
        model.posterior_states(jax.random.key(2), posterior, 3),
        model.sample_prior(jax.random.key(3), params, 40),
    ]


@pytest.mark.parametrize("blocks", ["hierarchical", "full"])
def test_residual_sets_equal_one_call_per_set_in_each_shape(blocks: str) -> None:
    model, params, x = tiny(blocks)
    sets = state_sets(model, params, x)
    together = model.residual_sets(params, sets)
    (y_post, k_post), (y_prior, k_prior) = sets
    alone = [model.batch_residual(params, y_post, k_post), model.residual(params, y_prior, k_prior)]
    assert [piece.shape for piece in together] == [(6, 3), (40,)]
    for joined, single in zip(together, alone, strict=True):
        np.testing.assert_allclose(joined, single, rtol=1e-12, atol=1e-12)


def test_residual_sets_of_none_and_of_one() -> None:
    model, params, x = tiny("full")
    assert model.residual_sets(params, []) == []
    (y, k), _ = state_sets(model, params, x)
    (only,) = model.residual_sets(params, [(y, k)])
    np.testing.assert_allclose(only, model.batch_residual(params, y, k), rtol=1e-12)


@pytest.mark.parametrize("blocks", ["hierarchical", "full"])
def test_combined_loss_equals_the_sum_of_the_terms_alone(blocks: str) -> None:
    """Value, reported values and gradient of ``elbo + conjugation`` against each term on its own."""
    model, params, x = tiny(blocks)
    weights = {"elbo": 1.0, "conjugation": 0.3, "posterior_entropy": 0.5}
    key, step = jax.random.key(4), jnp.asarray(5)
    combined = make_loss(model, weights, SETTINGS)
    (loss, values), grads = jax.jit(jax.value_and_grad(combined, has_aux=True))(params, x, key, step)

    # each term alone, with the key the combined loss gives it (split(key, terms + 1)[t])
    keys = jax.random.split(key, len(weights) + 1)
    registry = get_registry()
    expected_loss = 0.0
    expected_grads = jax.tree.map(jnp.zeros_like, params)
    for (name, weight), term_key in zip(weights.items(), keys, strict=False):
        term = registry.objective(name)

        def alone(p: Params, term=term, term_key=term_key) -> tuple[jax.Array, jax.Array]:
            return term(model, p, x, term_key, step, SETTINGS)

        (contribution, value), term_grads = jax.jit(jax.value_and_grad(alone, has_aux=True))(params)
        np.testing.assert_allclose(values[name], value, rtol=1e-10, atol=1e-12)
        expected_loss += weight * contribution
        expected_grads = jax.tree.map(lambda total, g, w=weight: total + w * g, expected_grads, term_grads)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert any(float(jnp.max(jnp.abs(leaf))) > 0 for leaf in jax.tree.leaves(grads))


@dataclass(frozen=True)
class MeanPriorResidual(Objective):
    """A third-party residual term: the mean of ``r`` over prior states (value and contribution)."""

    name: ClassVar[str] = "mean_prior_residual"

    def states(self, ctx, key):  # type: ignore[no-untyped-def]
        return jax.lax.stop_gradient(ctx.model.sample_prior(key, ctx.params, 7))

    def finish(self, ctx, key, states, residual):  # type: ignore[no-untyped-def]
        assert residual.shape == (7,)
        mean = jnp.mean(residual)
        return mean, mean


def test_a_third_party_residual_term_joins_the_shared_call() -> None:
    model, params, x = tiny("full")
    registry = Registry()
    registry.add("objectives", MeanPriorResidual.name, MeanPriorResidual(), "test")
    registry.add("objectives", "elbo", get_registry().objective("elbo"), "expfam")
    key, step = jax.random.key(5), jnp.asarray(0)
    _, values = make_loss(model, {"elbo": 1.0, "mean_prior_residual": 1.0}, SETTINGS, registry=registry)(
        params, x, key, step
    )
    y, k = model.sample_prior(jax.random.split(key, 3)[1], params, 7)
    np.testing.assert_allclose(values["mean_prior_residual"], jnp.mean(model.residual(params, y, k)), rtol=1e-12)
    # called on its own, the term evaluates its states itself
    alone, _ = MeanPriorResidual()(model, params, x, jax.random.split(key, 3)[1], step, SETTINGS)
    np.testing.assert_allclose(alone, values["mean_prior_residual"], rtol=1e-12)
