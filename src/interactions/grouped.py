"""Grouped (per-cluster) matrix-vector products for mixture interaction blocks.

A mixture model with `K` clusters keeps one offset matrix per non-base cluster,
`matrices` of shape `(K-1, D, n)`; cluster `k >= 1` uses `matrices[k-1]` and
cluster `0` has no matrix (it contributes zero).  For `S` samples with latent
vectors `y` (`(S, n)`) and cluster indices `k` (`(S,)`) we need:

```text
out[s] = matrices[k[s] - 1] @ y[s]      if k[s] >= 1
out[s] = 0                              if k[s] == 0
```

The textbook way to write this is a dense one-hot outer product
`(y[:, :, None] * onehot(k)[:, None, 1:]).reshape(S, n*(K-1)) @ V_as`, which does
`K-1` times the work of the hierarchical `(S, n) @ (n, D)` product.
[`cluster_matvec`][interactions.grouped.cluster_matvec] does (close to) the work of a single `(S, n) @ (n, D)`
product instead, and has a hand-written backward pass that is grouped the same way.

**Method ("sorted windows").**

1. Sort samples by cluster (`argsort(k)`); cluster `j` then owns the contiguous
   sorted rows `[a_j, b_j)` (cluster 0 comes first and is skipped).
2. Cover every cluster's rows with windows of `T` consecutive sorted rows (the last
   window of a cluster may overhang into the next cluster's rows or into `T` rows
   of zero padding).  There are at most `(S + (K-1)(T-1)) // T` windows, a static
   bound, but a `fori_loop` with a dynamic trip count runs only the windows that
   exist for this `k`; it is therefore exact and robust to any cluster layout
   (all samples in one cluster, empty clusters, `S` not a multiple of `T`, ...).
3. Each window is one `(T, n) @ (n, D)` matmul with `matrices[j]` read by a
   dynamic slice (no `(S, D, n)` or `(windows, D, n)` gather is materialised);
   rows outside `[a_j, b_j)` are masked out of the write.
4. Unsort with the inverse permutation.

The backward pass (`jax.custom_vjp`) walks the same windows:
`dV[j] += g_w^T y_w` (rows masked to cluster `j`) and `dy_w = g_w V[j]`, so the
gradient costs about twice the forward, like a plain matmul.  (`jax.lax.ragged_dot`
is no alternative on CPU: there it lowers to a dense masked product, about as slow as
the one-hot baseline forward and several times slower in its transpose.)

Timings against the dense one-hot product, `jax.lax.ragged_dot` and the other candidates
(`benchmarks/cluster_matvec.py`) are in docs/benchmarks.md, "Grouped cluster products".
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["cluster_matvec", "cluster_matvec_dense", "default_tile_rows"]

Array = jax.Array


def default_tile_rows(num_samples: int, num_clusters: int) -> int:
    """Window height `T` used by [`cluster_matvec`][interactions.grouped.cluster_matvec] when none is given.

    64 rows, lowered to the next power of two `>= num_samples` for tiny batches.
    Smaller windows pay more per-window overhead and a less efficient small matmul, larger
    ones waste more rows in each cluster's last, partly filled window (at most `(K-1)(T-1)`
    padded rows in all); 64 was the fastest of 32, 64 and 128 on CPU (docs/benchmarks.md).
    `num_clusters` is accepted for future tuning and currently unused.
    """
    del num_clusters
    cap = 8
    while cap < num_samples:
        cap *= 2
    return min(64, cap)


def cluster_matvec_dense(matrices: Array, y: Array, k: Array) -> Array:
    """Reference: dense one-hot formulation (`K-1` times the matmul work)."""
    km1, d, n = matrices.shape
    onehot = jax.nn.one_hot(k, km1 + 1, dtype=y.dtype)[:, 1:]
    feats = (y[:, :, None] * onehot[:, None, :]).reshape(y.shape[0], n * km1)
    return feats @ jnp.transpose(matrices, (2, 0, 1)).reshape(n * km1, d)


def _plan(k: Array, km1: int, tile: int) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Sort permutation and window table for the sorted-window scheme."""
    s = k.shape[0]
    k = k.astype(jnp.int32)
    order = jnp.argsort(k, stable=True).astype(jnp.int32)
    rank = jnp.zeros((s,), jnp.int32).at[order].set(jnp.arange(s, dtype=jnp.int32))
    counts = jnp.bincount(k, length=km1 + 1).astype(jnp.int32)
    starts = jnp.cumsum(counts) - counts  # first sorted row of each cluster
    counts, starts = counts[1:], starts[1:]  # cluster 0 has no matrix
    ends = starts + counts
    nwin = (counts + tile - 1) // tile
    wend = jnp.cumsum(nwin)
    used = wend[-1]
    max_windows = max(1, (s + km1 * (tile - 1)) // tile)
    w = jnp.arange(max_windows, dtype=jnp.int32)
    wcl = jnp.minimum(jnp.searchsorted(wend, w, side="right"), km1 - 1).astype(jnp.int32)
    wstart = starts[wcl] + (w - (wend[wcl] - nwin[wcl])) * tile
    return order, rank, wcl, wstart, ends, used


def _window_rows(x: Array, start: Array, tile: int) -> Array:
    return lax.dynamic_slice_in_dim(x, start, tile, axis=0)


def _forward(matrices: Array, ys: Array, wcl: Array, wstart: Array, ends: Array, used: Array, tile: int) -> Array:
    """Grouped product in sorted order; `ys` is sorted y padded by `tile` rows."""
    rows_total = ys.shape[0]
    d = matrices.shape[1]
    offs = jnp.arange(tile, dtype=jnp.int32)

    def body(i: Array, out: Array) -> Array:
        j, a = wcl[i], wstart[i]
        rows = _window_rows(ys, a, tile)
        vj = lax.dynamic_index_in_dim(matrices, j, axis=0, keepdims=False)
        prod = lax.dot_general(rows, vj, (((1,), (1,)), ((), ())))  # (T, D)
        keep = (a + offs < ends[j])[:, None]
        old = _window_rows(out, a, tile)
        return lax.dynamic_update_slice_in_dim(out, jnp.where(keep, prod, old), a, axis=0)

    out: Array = lax.fori_loop(0, used, body, jnp.zeros((rows_total, d), ys.dtype))
    return out


def _backward(
    matrices: Array, ys: Array, gs: Array, wcl: Array, wstart: Array, ends: Array, used: Array, tile: int
) -> tuple[Array, Array]:
    offs = jnp.arange(tile, dtype=jnp.int32)

    def body(i: Array, carry: tuple[Array, Array]) -> tuple[Array, Array]:
        dv, dys = carry
        j, a = wcl[i], wstart[i]
        keep = (a + offs < ends[j])[:, None]
        g = jnp.where(keep, _window_rows(gs, a, tile), 0)  # (T, D), other clusters' rows zeroed
        rows = _window_rows(ys, a, tile)  # (T, n)
        vj = lax.dynamic_index_in_dim(matrices, j, axis=0, keepdims=False)
        upd = lax.dot_general(g, rows, (((0,), (0,)), ((), ())))  # (D, n)
        dv = lax.dynamic_update_index_in_dim(
            dv, lax.dynamic_index_in_dim(dv, j, axis=0, keepdims=False) + upd, j, axis=0
        )
        dyw = g @ vj  # (T, n); zero on masked rows
        dys = lax.dynamic_update_slice_in_dim(dys, _window_rows(dys, a, tile) + dyw, a, axis=0)
        return dv, dys

    init = (jnp.zeros_like(matrices), jnp.zeros_like(ys))
    grads: tuple[Array, Array] = lax.fori_loop(0, used, body, init)
    return grads


@partial(jax.custom_vjp, nondiff_argnums=(8,))
def _grouped(
    matrices: Array, y: Array, order: Array, rank: Array, wcl: Array, wstart: Array, ends: Array, used: Array, tile: int
) -> Array:
    out, _ = _grouped_fwd(matrices, y, order, rank, wcl, wstart, ends, used, tile)
    return out


def _sorted_padded(x: Array, order: Array, tile: int) -> Array:
    xs = x[order]
    return jnp.concatenate([xs, jnp.zeros((tile, *x.shape[1:]), x.dtype)], axis=0)


def _grouped_fwd(
    matrices: Array, y: Array, order: Array, rank: Array, wcl: Array, wstart: Array, ends: Array, used: Array, tile: int
) -> tuple[Array, tuple[Array, ...]]:
    ys = _sorted_padded(y, order, tile)
    outs = _forward(matrices, ys, wcl, wstart, ends, used, tile)
    out = outs[rank]
    return out, (matrices, ys, order, rank, wcl, wstart, ends, used)


def _grouped_bwd(tile: int, res: tuple[Array, ...], g: Array) -> tuple[Array | None, ...]:
    matrices, ys, order, rank, wcl, wstart, ends, used = res
    gs = _sorted_padded(g.astype(ys.dtype), order, tile)
    dv, dys = _backward(matrices, ys, gs, wcl, wstart, ends, used, tile)
    dy = dys[rank]
    return (dv, dy, None, None, None, None, None, None)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def cluster_matvec(matrices: Array, y: Array, k: Array, *, tile_rows: int | None = None) -> Array:
    """Per-sample cluster matrix-vector product.

    `out[s] = matrices[k[s] - 1] @ y[s]` for `k[s] >= 1` and `out[s] = 0` for
    `k[s] == 0`.

    Args:
      matrices: `(K-1, D, n)` offset matrices of clusters `1..K-1`.
      y: `(S, n)` latent vectors (any floats; binary in the mixture model).
      k: `(S,)` integer cluster indices in `0..K-1`.  Values outside that range
        give unspecified results.
      tile_rows: window height `T` of the grouped matmul (static); defaults to
        [`default_tile_rows`][interactions.grouped.default_tile_rows].

    Returns:
      `(S, D)` array in `result_type(matrices, y)`.

    Method: sort samples by cluster and run one `(T, n) @ (n, D)` matmul per window
    of `T` sorted rows of a single cluster, for only the windows that exist
    (`sum_j ceil(count_j / T)` of them); the `jax.custom_vjp` backward walks the
    same windows for `d matrices` and `d y`.  Work is about that of one
    `(S + (K-1) T/2, n) @ (n, D)` matmul instead of the dense one-hot product's
    `K-1` times `(S, n) @ (n, D)`.  On other platforms (GPU, TPU) the dense one-hot
    product [`cluster_matvec_dense`][interactions.grouped.cluster_matvec_dense] is used
    instead, where it is faster than the window loop (a chain of small kernels there;
    timings in docs/benchmarks.md).  Works under `jit`, `grad`
    and `vmap`; being a `custom_vjp` it supports reverse mode only (no `jvp`).
    """
    km1, d, n = matrices.shape
    if y.ndim != 2 or y.shape[1] != n:
        raise ValueError(f"y must have shape (S, {n}), got {y.shape}")
    s = y.shape[0]
    if k.shape != (s,):
        raise ValueError(f"k must have shape ({s},), got {k.shape}")
    dtype = jnp.result_type(matrices, y)
    if km1 == 0 or s == 0:
        return jnp.zeros((s, d), dtype)
    tile = int(tile_rows) if tile_rows is not None else default_tile_rows(s, km1 + 1)
    if tile < 1:
        raise ValueError("tile_rows must be positive")

    def windows(matrices: Array, y: Array, k: Array) -> Array:
        order, rank, wcl, wstart, ends, used = _plan(k, km1, tile)
        return _grouped(matrices, y, order, rank, wcl, wstart, ends, used, tile)

    # Sorted windows are a loop of small products: right for a CPU, where the dense one-hot
    # product costs K−1 times the arithmetic. On an accelerator each window is a kernel launch
    # and the loop measured 5x slower than the dense product (docs/benchmarks.md, GPU), which
    # a GPU runs at matmul speed; XLA picks the branch for the platform it compiles for.
    out: Array = lax.platform_dependent(
        matrices.astype(dtype), y.astype(dtype), k, cpu=windows, default=cluster_matvec_dense
    )
    return out
