"""``expfam.posterior.shared_computations``: one η_q(x) per (params, x) and trace, same values, no leaks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from expfam import posterior
from expfam.builder import build_model
from expfam.posterior import shared_computations
from expfam.testing import random_model_params


def small_model():
    model = build_model(
        observable="binomial", observable_options={"n_trials": 3}, data_dim=5, n_latent=3, n_clusters=4, blocks="full"
    )
    x = jax.random.binomial(jax.random.PRNGKey(1), 3, 0.4, (6, 5)).astype(jnp.float32)
    return model, model.init(jax.random.PRNGKey(0), x), x


def test_shared_inside_the_block_and_fresh_outside() -> None:
    model, params, x = small_model()
    with shared_computations():
        first = model.posterior_params(params, x)
        assert model.posterior_params(params, x) is first
        assert model.posterior_summary(params, x) is model.posterior_summary(params, x)
        other = {**params, "rho_y": params["rho_y"] + 1.0}
        assert model.posterior_params(other, x) is not first
    assert model.posterior_params(params, x) is not first
    np.testing.assert_allclose(model.posterior_params(params, x)["W_yk"], first["W_yk"])


def test_a_value_made_inside_vmap_is_not_reused_outside() -> None:
    model, params, x = small_model()

    def loss(p):
        with shared_computations():
            inner = jax.vmap(lambda row: model.cluster_responsibilities(p, x)[0] * row)(jnp.ones(2))
            return jnp.sum(inner) + jnp.sum(model.cluster_responsibilities(p, x))

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    expected = 2.0 * jnp.sum(model.cluster_responsibilities(params, x)[0]) + x.shape[0]
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(grads))


def test_gradient_with_sharing_equals_gradient_without() -> None:
    model, params, x = small_model()

    def loss(p):
        kl = jnp.mean(model.posterior_kl(p, x))
        entropy = jnp.sum(jnp.mean(model.cluster_responsibilities(p, x), axis=0) ** 2)
        return kl + jnp.mean(model.baseline(p, x)) + entropy

    def shared(p):
        with shared_computations():
            return loss(p)

    for ours, plain in zip(
        jax.tree.leaves(jax.grad(shared)(params)), jax.tree.leaves(jax.grad(loss)(params)), strict=True
    ):
        np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-9)


def test_hierarchical_log_density_with_one_w_yk_for_the_batch_is_the_batched_one() -> None:
    """Without an ``xyk`` block η_q's ``W_yk`` is the prior's for every row: one product, same value and gradient."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 3},
        data_dim=5,
        n_latent=3,
        n_clusters=4,
        blocks="hierarchical",
    )
    x = jax.random.binomial(jax.random.PRNGKey(1), 3, 0.4, (6, 5)).astype(jnp.float64)
    params = random_model_params(model, jax.random.PRNGKey(2), scale=0.5)
    y = jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, (6, 7, 3)).astype(jnp.float64)
    k = jax.random.randint(jax.random.PRNGKey(4), (6, 7), 0, 4)

    def batched(p):  # outside the block nothing is shared: the per-observation product
        return jnp.sum(jnp.sin(model.batch_posterior_log_density(model.posterior_summary(p, x), y, k)))

    def shared(p):
        with shared_computations():
            summary = model.posterior_summary(p, x)
            assert posterior.batch_broadcast_of(summary.params["W_yk"]) is not None
            return batched(p)

    np.testing.assert_allclose(shared(params), batched(params), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(jax.grad(shared)(params)), jax.tree.leaves(jax.grad(batched)(params)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with shared_computations():  # the full model's W_yk varies with x: never recorded
        summary = small_model()[0].posterior_summary(*small_model()[1:])
        assert posterior.batch_broadcast_of(summary.params["W_yk"]) is None
