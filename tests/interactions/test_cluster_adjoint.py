"""``interactions.xyk.cluster_adjoint`` against the plain einsum it replaces (value and gradients)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interactions.xyk import cluster_adjoint


def plain(matrices: jax.Array, statistic: jax.Array) -> jax.Array:
    return jnp.einsum("jdn,bd->bnj", matrices, statistic)


@pytest.mark.parametrize(("clusters", "data", "latent", "batch"), [(1, 3, 2, 1), (4, 7, 5, 3), (29, 20, 6, 9)])
def test_value_and_gradients_match_the_einsum(clusters: int, data: int, latent: int, batch: int) -> None:
    keys = jax.random.split(jax.random.PRNGKey(clusters + data), 3)
    matrices = jax.random.normal(keys[0], (clusters, data, latent))
    statistic = jax.random.normal(keys[1], (batch, data))
    cotangent = jax.random.normal(keys[2], (batch, latent, clusters))
    np.testing.assert_allclose(cluster_adjoint(matrices, statistic), plain(matrices, statistic), rtol=1e-5, atol=1e-5)

    def pulled(f):
        return jax.grad(lambda m, s: jnp.sum(f(m, s) * cotangent), argnums=(0, 1))(matrices, statistic)

    for ours, reference in zip(pulled(cluster_adjoint), pulled(plain), strict=True):
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_adjointness_with_the_offset_under_jit_and_vmap() -> None:
    """``s·L(z) = Lᵀ(s)·s_Z(z)``: Σ_d s_d (V_k y)_d = Σ_n y_n (V_kᵀ s)_n, for a batch of s."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    matrices = jax.random.normal(keys[0], (3, 6, 4))
    statistic = jax.random.normal(keys[1], (2, 5, 6))
    y = jax.random.normal(keys[2], (4,))
    out = jax.jit(jax.vmap(cluster_adjoint, in_axes=(None, 0)))(matrices, statistic)  # (2, 5, 4, 3)
    for k in range(3):
        lhs = statistic @ (matrices[k] @ y)
        rhs = out[..., k] @ y
        np.testing.assert_allclose(lhs, rhs, rtol=1e-5, atol=1e-5)


def test_accelerator_and_cpu_backward_products_agree() -> None:
    """The batched contractions used off-CPU give the looped products' ``dV`` and ``ds``."""
    from interactions.xyk import _adjoint_grads_batched, _adjoint_grads_looped

    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    matrices = jax.random.normal(keys[0], (4, 7, 5))
    statistic = jax.random.normal(keys[1], (6, 7))
    per_cluster = jax.random.normal(keys[2], (4, 6, 5))
    looped = _adjoint_grads_looped(matrices, statistic, per_cluster)
    batched = _adjoint_grads_batched(matrices, statistic, per_cluster)
    for got, want in zip(batched, looped, strict=True):
        assert got.shape == want.shape
        assert jnp.allclose(got, want, rtol=1e-5, atol=1e-5)
