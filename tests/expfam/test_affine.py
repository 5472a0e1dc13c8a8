"""The fused grouped product ``(W + V_k) y + u_k`` against its one-hot form, and the model's use of it."""

from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expfam.affine import cluster_affine_dense, cluster_affine_sorted
from expfam.builder import build_model
from expfam.errors import ShapeError
from expfam.testing import random_model_params


def _case(seed: int, s: int, n_clusters: int, d: int, n: int, layout: str):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((d, n))
    per_cluster = rng.standard_normal((n_clusters - 1, d, n))
    bias = rng.standard_normal((n_clusters - 1, d))
    y = rng.standard_normal((s, n))  # any reals: the product is not restricted to binary states
    if layout == "random":
        k = rng.integers(0, n_clusters, s)
    elif layout == "reference only":
        k = np.zeros(s, int)
    elif layout == "last only":
        k = np.full(s, n_clusters - 1)
    else:  # a few crowded clusters, the others empty
        k = rng.choice([0, 1, n_clusters - 1], size=s, p=[0.2, 0.5, 0.3])
    k = np.sort(k)
    cotangent = rng.standard_normal((s, d))
    return shared, per_cluster, bias, y, k, cotangent


@partial(jax.jit, static_argnames=("fn",))
def _value_and_grads(fn, shared, per_cluster, bias, y, k, cotangent):
    out, pullback = jax.vjp(lambda *args: fn(*args, k), shared, per_cluster, bias, y)
    return (out, *pullback(cotangent))


@cache
def _windows(tile):
    """One partial per window height, so that `_value_and_grads` (static in `fn`) compiles once per shape."""
    return partial(cluster_affine_sorted, tile_rows=tile)


LAYOUTS = ("random", "reference only", "last only", "crowded")
CONFIGS = [
    # (S, K, D, n, tile_rows)
    (37, 5, 7, 3, 4),  # S not a multiple of the window: the last window starts earlier
    (1, 2, 3, 2, None),  # one state, window clipped to S
    (64, 4, 5, 6, 16),  # S a multiple of the window
    (123, 30, 9, 8, 16),  # seed-like K, empty clusters
    (7, 9, 4, 3, 64),  # window taller than S
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("s", "n_clusters", "d", "n", "tile"), CONFIGS)
def test_windows_equal_the_one_hot_form_with_gradients(s, n_clusters, d, n, tile, layout):
    with jax.enable_x64(True):
        case = _case(s * 1000 + n_clusters, s, n_clusters, d, n, layout)
        args = [jnp.asarray(a) for a in case]
        got = _value_and_grads(_windows(tile), *args)
        want = _value_and_grads(cluster_affine_dense, *args)
        for name, g, w in zip(("value", "dW", "dV", "du", "dy"), got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-10, err_msg=name)


#: (K, S, window height T) of the drawn layouts. The clusters `k` are a traced argument, so every
#: layout of one (K, S, T) runs the same compiled program (each costs seconds to compile): the
#: layouts are drawn, the shapes are these four. Cluster sizes run over 0..S (empty clusters
#: anywhere, one cluster holding every row); K = 2 (one matrix) and K = 7; a cluster taller than
#: a piece (8T rows) is cut into several for T = 1, 2 and 4; T = 9 has pieces taller than S = 11;
#: S is a multiple of no T here (the last window starts earlier).
LAYOUT_SHAPES = ((2, 11, 1), (2, 11, 9), (7, 45, 2), (7, 45, 4))


@st.composite
def sorted_cluster_layouts(draw):
    """Sizes of K clusters holding S rows in all (K − 1 cut points anywhere in 0..S), and T."""
    n_clusters, n_rows, tile = draw(st.sampled_from(LAYOUT_SHAPES))
    cuts = draw(st.lists(st.integers(0, n_rows), min_size=n_clusters - 1, max_size=n_clusters - 1))
    return np.diff([0, *sorted(cuts), n_rows]), tile


@settings(max_examples=40, deadline=None)
@given(layout=sorted_cluster_layouts())
def test_any_cluster_sizes(layout):
    """Every layout of sorted clusters (empty ones anywhere, any window height) is exact."""
    counts, tile = layout
    with jax.enable_x64(True):
        rng = np.random.default_rng(len(counts) * 31 + tile)
        k = np.repeat(np.arange(len(counts)), counts)
        d, n = 3, 2
        args = [
            jnp.asarray(rng.standard_normal((d, n))),
            jnp.asarray(rng.standard_normal((len(counts) - 1, d, n))),
            jnp.asarray(rng.standard_normal((len(counts) - 1, d))),
            jnp.asarray(rng.standard_normal((k.size, n))),
            jnp.asarray(k),
            jnp.asarray(rng.standard_normal((k.size, d))),
        ]
        got = _value_and_grads(_windows(tile), *args)
        want = _value_and_grads(cluster_affine_dense, *args)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dropped", ["shared", "bias", "both"])
@pytest.mark.parametrize(("s", "n_clusters", "d", "n", "tile"), CONFIGS)
def test_without_shared_or_bias_equal_the_one_hot_form(s, n_clusters, d, n, tile, dropped):
    """`W` or `u` left out (`None`): the reference cluster's rows are skipped, not multiplied by zero."""
    with jax.enable_x64(True):
        shared, per_cluster, bias, y, k, cotangent = (
            jnp.asarray(a) for a in _case(s + n_clusters, s, n_clusters, d, n, "crowded")
        )
        shared = None if dropped in ("shared", "both") else shared
        bias = None if dropped in ("bias", "both") else bias
        got = _value_and_grads(_windows(tile), shared, per_cluster, bias, y, k, cotangent)
        want = _value_and_grads(cluster_affine_dense, shared, per_cluster, bias, y, k, cotangent)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-10)


def test_shape_errors_name_the_expected_shape():
    shared, per_cluster, bias, y, k, _ = _case(0, 10, 4, 5, 3, "random")
    with pytest.raises(ValueError, match=r"shared must have shape \(5, 3\)"):
        cluster_affine_sorted(shared.T, per_cluster, bias, y, k)
    with pytest.raises(ValueError, match=r"bias must have shape \(3, 5\)"):
        cluster_affine_sorted(shared, per_cluster, bias.T, y, k)
    with pytest.raises(ValueError, match=r"k must have shape \(10,\)"):
        cluster_affine_sorted(shared, per_cluster, bias, y, k[:3])
    with pytest.raises(ShapeError, match=r"y must have shape \(S, 3\)"):
        cluster_affine_sorted(shared, per_cluster, bias, y[:, :2], k)


@pytest.mark.parametrize("blocks", [("xy", "xyk", "xk"), ("xy", "xyk"), ("xk", "xyk"), ("xyk",)])
def test_model_log_partition_fused_equals_block_by_block(blocks):
    """``ψ_X(θ_X(z))`` and its gradient: the fused sorted path against each block's own offset."""
    model = build_model(
        observable="binomial", observable_options={"n_trials": 16}, data_dim=12, n_latent=5, n_clusters=6, blocks=blocks
    )
    params = random_model_params(model, jax.random.PRNGKey(1), scale=0.3)
    y = (jax.random.uniform(jax.random.PRNGKey(2), (200, 5)) < 0.4).astype(jnp.float32)
    k = jax.random.randint(jax.random.PRNGKey(3), (200,), 0, 6)  # unsorted: the model sorts
    weights = jnp.sin(jnp.arange(200.0) + 1.0)
    assert model._cluster_affine(params) is not None

    @jax.jit
    def block_by_block(params):
        return jax.vmap(model.observable.log_partition)(model.observable_params(params, y, k))

    @jax.jit
    def fused(params):
        return model.observable_log_partition(params, y, k)

    np.testing.assert_allclose(fused(params), block_by_block(params), rtol=1e-6)
    got = jax.jit(jax.grad(lambda p: jnp.sum(weights * fused(p))))(params)
    want = jax.jit(jax.grad(lambda p: jnp.sum(weights * block_by_block(p))))(params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_hierarchical_model_keeps_the_dense_product():
    """Without per-cluster matrices the blocks' own dense and one-hot products are cheaper."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 4},
        data_dim=6,
        n_latent=3,
        n_clusters=4,
        blocks=("xy", "xk"),
    )
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((4, 6)))
    assert model._cluster_affine(params) is None
