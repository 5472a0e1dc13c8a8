"""cluster_matvec (sort, the grouped product, unsort) against the dense one-hot baseline (values and gradients)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.affine import cluster_matvec, cluster_matvec_dense
from expfam.errors import ShapeError


def _case(seed, s, k_clusters, d, n, mode):
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((k_clusters - 1, d, n))
    y = (rng.random((s, n)) < 0.5).astype(np.float64)
    if mode == "random":
        k = rng.integers(0, k_clusters, s)
    elif mode == "all_zero":
        k = np.zeros(s, int)
    elif mode == "all_last":
        k = np.full(s, k_clusters - 1)
    elif mode == "all_first":
        k = np.ones(s, int)
    elif mode == "sparse":  # many empty clusters, a few crowded ones
        k = rng.choice([0, 1, k_clusters - 1], size=s, p=[0.2, 0.5, 0.3])
    else:
        raise ValueError(mode)
    cot = rng.standard_normal((s, d))
    return V, y, k, cot


@partial(jax.jit, static_argnames=("fn",))
def _value_and_grads(fn, V, y, k, cot):
    """(out, d<out, cot>/dV, d<out, cot>/dy) in one jitted call (cached per shape)."""
    out, pullback = jax.vjp(lambda V, y: fn(V, y, k), V, y)
    return (out, *pullback(cot))


def _grouped(tile):
    return _GROUPED.setdefault(tile, partial(_call_grouped, tile_rows=tile))


def _call_grouped(V, y, k, *, tile_rows):
    return cluster_matvec(V, y, k, tile_rows=tile_rows)


_GROUPED = {}
MODES = ("random", "all_zero", "all_first", "all_last", "sparse")
CONFIGS = [
    # (S, K, D, n, tile_rows); every config is checked for every k layout in MODES
    (37, 5, 7, 3, 4),  # S not a multiple of the window
    (1, 2, 3, 2, None),  # single sample, K=2
    (50, 2, 5, 6, 8),  # K=2: one matrix
    (64, 4, 5, 6, 16),  # S a multiple of the window
    (123, 30, 9, 8, 16),  # seed-like K, many empty clusters in "sparse"
    (7, 9, 4, 3, 64),  # window much taller than S
]


@pytest.mark.parametrize("s,kc,d,n,tile", CONFIGS)
def test_matches_dense_float64(s, kc, d, n, tile):
    with jax.enable_x64(True):
        for i, mode in enumerate(MODES):
            V, y, k, cot = (jnp.asarray(a) for a in _case(100 * s + 10 * kc + i, s, kc, d, n, mode))
            got = _value_and_grads(_grouped(tile), V, y, k, cot)
            ref = _value_and_grads(cluster_matvec_dense, V, y, k, cot)
            assert got[0].shape == (s, d) and got[0].dtype == jnp.float64
            for a, b in zip(got, ref, strict=True):  # out, d/dV, d/dy
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=mode)
            np.testing.assert_array_equal(np.asarray(got[0])[np.asarray(k) == 0], 0.0)


def _numpy_reference(V, y, k, cot):
    out = np.zeros((y.shape[0], V.shape[1]))
    dV, dy = np.zeros_like(V), np.zeros_like(y)
    for s in np.flatnonzero(k > 0):
        out[s] = V[k[s] - 1] @ y[s]
        dV[k[s] - 1] += np.outer(cot[s], y[s])
        dy[s] = V[k[s] - 1].T @ cot[s]
    return out, dV, dy


def test_float32_default_tile():
    V, y, k, cot = _case(0, 300, 7, 13, 10, "random")
    got = _value_and_grads(
        cluster_matvec,
        jnp.asarray(V, jnp.float32),
        jnp.asarray(y, jnp.float32),
        jnp.asarray(k),
        jnp.asarray(cot, jnp.float32),
    )
    assert got[0].dtype == jnp.float32
    for a, b in zip(got, _numpy_reference(V, y, k, cot), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_vmap_over_sample_batches():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        V = rng.standard_normal((3, 5, 4))
        y = rng.random((2, 9, 4))
        k = np.stack([rng.integers(0, 4, 9), np.full(9, 2)])
        out = jax.jit(jax.vmap(lambda y, k: cluster_matvec(jnp.asarray(V), y, k, tile_rows=4)))(
            jnp.asarray(y), jnp.asarray(k)
        )
        for i in range(2):
            np.testing.assert_allclose(
                out[i], _numpy_reference(V, y[i], k[i], np.zeros((9, 5)))[0], rtol=1e-12, atol=1e-12
            )


def test_no_matrices_and_no_samples():
    V = jnp.zeros((0, 5, 3))
    out = cluster_matvec(V, jnp.ones((4, 3)), jnp.zeros(4, jnp.int32))
    assert out.shape == (4, 5) and not np.any(np.asarray(out))
    out = cluster_matvec(jnp.ones((2, 5, 3)), jnp.ones((0, 3)), jnp.zeros(0, jnp.int32))
    assert out.shape == (0, 5)


def test_shape_errors():
    V = jnp.ones((2, 5, 3))
    with pytest.raises(ValueError):
        cluster_matvec(V, jnp.ones((4, 2)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError):
        cluster_matvec(V, jnp.ones((4, 3)), jnp.zeros(3, jnp.int32))


def test_shape_errors_are_shape_errors_that_name_the_fix():
    V = jnp.ones((2, 5, 3))
    with pytest.raises(ShapeError, match=r"y must have shape \(S, 3\).*got \(4, 2\); flatten"):
        cluster_matvec(V, jnp.ones((4, 2)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ShapeError, match=r"k must have shape \(4,\), one cluster per row of y, got \(3,\)"):
        cluster_matvec(V, jnp.ones((4, 3)), jnp.zeros(3, jnp.int32))
    with pytest.raises(ShapeError, match=r"per_cluster must have shape \(K-1, D, n\)"):
        cluster_matvec(jnp.ones((5, 3)), jnp.ones((4, 3)), jnp.zeros(4, jnp.int32))
