r"""One grouped product for every block that is affine in `s_Y(y)` within each cluster.

The blocks `xy`, `xk` and `xyk` all add to the observable's parameters an offset that,
for a fixed cluster `k`, is affine in the latent statistics:

$$
\sum_b L_b(s_Z(y, k)) = (W + V_k)\, s_Y(y) + u_k,\qquad V_0 = 0,\ u_0 = 0.
$$

Evaluated block by block at `S` sampled states this is a dense `(S, n)·(n, D)` product
for `W`, a grouped product of the same size for `V_k`
([`interactions.grouped.cluster_matvec`][interactions.grouped.cluster_matvec]) and a one-hot product for `u_k`.
[`cluster_affine_sorted`][expfam.affine.cluster_affine_sorted] does all three as **one** grouped product with the
per-cluster matrix `M_k = W + V_k` (formed piece by piece, never as a `(K, D, n)`
array) and the bias `u_k` added in the same product: the multiply-adds of one
`(S, n)·(n, D)` product instead of two. Its input is sorted by cluster and so is its
output, which lets the caller reduce each row (`ψ_X`) before undoing the sort: the
`(S, D)` arrays are never permuted, forward or backward
([`expfam.model.Harmonium.observable_log_partition`][expfam.model.Harmonium.observable_log_partition]).

On a CPU each cluster's rows are cut into *pieces* of at most `8·T` rows (`T = 64`), and
each piece is one product whose height is the smallest multiple of `T` that covers it; the
pieces are run in one loop per height. A cluster of up to 512 states is then one product and,
in the backward pass, one `D × n` accumulation of `∂M_k`, where 64-row windows took one per
window.

Measured with `python benchmarks/full_floor.py`, `benchmarks/step_time.py` and
`benchmarks/full_ablation.py` (docs/benchmarks.md, "One grouped product for the full model"
and "Pieces of one height per cluster").
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["cluster_affine_dense", "cluster_affine_sorted"]

Array = jax.Array

#: Height step `T` of the grouped product's pieces on a CPU: each piece is a multiple of it.
TILE_ROWS = 64
#: Pieces are at most `HEIGHT_STEPS · T` rows; a cluster with more rows takes several.
HEIGHT_STEPS = 8


def cluster_affine_dense(shared: Array, per_cluster: Array, bias: Array, y: Array, k: Array) -> Array:
    """Reference (and accelerator) form: `y Wᵀ + (y ⊗ e_k) V + e_k Uᵀ` with one-hot products.

    `K − 1` times the multiply-adds of the grouped form; a GPU runs it as three large
    products, where the piece loops would be a chain of small kernels.
    """
    km1, d, n = per_cluster.shape
    onehot = jax.nn.one_hot(k, km1 + 1, dtype=y.dtype)[:, 1:]
    features = (y[:, :, None] * onehot[:, None, :]).reshape(y.shape[0], n * km1)
    stacked = jnp.transpose(per_cluster, (2, 0, 1)).reshape(n * km1, d)
    return y @ shared.T + features @ stacked + onehot @ bias


def _heights(s: int, tile: int) -> tuple[int, ...]:
    """Static piece heights `T, 2T, …, P·T` with `P = min(HEIGHT_STEPS, ⌊S / T⌋)`: every one fits in `S` rows."""
    return tuple(tile * m for m in range(1, max(1, min(HEIGHT_STEPS, s // tile)) + 1))


def _pieces(k: Array, n_clusters: int, heights: tuple[int, ...]) -> tuple[Array, ...]:
    r"""The pieces of sorted `k`, ordered by height: `(cluster, first, end, runs)`.

    Cluster `j` owns rows `[a_j, b_j)` and is cut into `⌈c_j / H⌉` pieces of at most `H`
    rows (`H` the tallest height). Each piece runs as one product of the smallest height that
    covers it. The pieces are listed by height, in a static-length list of
    `K + ⌊S / H⌋ ≥ Σ_j ⌈c_j / H⌉` slots (unused slots last); `runs[h]` is where the pieces of
    height index `h` end in that list.
    """
    tallest, tile, s = heights[-1], heights[0], k.shape[0]
    counts = jnp.bincount(k, length=n_clusters).astype(jnp.int32)
    ends = jnp.cumsum(counts).astype(jnp.int32)
    per_cluster = (counts + tallest - 1) // tallest
    last = jnp.cumsum(per_cluster).astype(jnp.int32)  # one past each cluster's last piece
    slots = jnp.arange(n_clusters + s // tallest, dtype=jnp.int32)
    cluster = jnp.minimum(jnp.searchsorted(last, slots, side="right"), n_clusters - 1).astype(jnp.int32)
    first = ends[cluster] - counts[cluster] + (slots - (last[cluster] - per_cluster[cluster])) * tallest
    end = jnp.minimum(first + tallest, ends[cluster])
    used = slots < last[-1]
    index = jnp.where(used, (end - first + tile - 1) // tile - 1, len(heights)).astype(jnp.int32)
    order = jnp.argsort(index, stable=True)
    runs = jnp.cumsum(jnp.bincount(index, length=len(heights) + 1)).astype(jnp.int32)
    return cluster[order], first[order], end[order], runs


def _rows(first: Array, end: Array, s: int, height: int) -> tuple[Array, Array]:
    """The `height` rows that cover `[first, end)`: their first row and the mask of the rows that are its own.

    A piece that would run past the last row starts at `S − height` instead and masks the
    rows before `first` (they belong to earlier pieces or clusters).
    """
    row0 = jnp.minimum(first, s - height)
    rows = row0 + jnp.arange(height, dtype=jnp.int32)
    return row0, ((rows >= first) & (rows < end))[:, None]


def _masked_rows(g: Array, first: Array, end: Array, height: int) -> tuple[Array, Array]:
    """The piece's `height` rows of `g` (first row, rows), zero where they are not its own."""
    row0, keep = _rows(first, end, g.shape[0], height)
    return row0, jnp.where(keep, lax.dynamic_slice_in_dim(g, row0, height, axis=0), 0)


def _slot(per_cluster: Array, j: Array) -> Array:
    """Cluster `j`'s slice `per_cluster[j − 1]`, zero for the reference cluster `j = 0`."""
    value = lax.dynamic_index_in_dim(per_cluster, jnp.maximum(j - 1, 0), axis=0, keepdims=False)
    return jnp.where(j >= 1, value, jnp.zeros_like(value))


def _add_slot(per_cluster: Array, j: Array, value: Array) -> Array:
    """`per_cluster[j − 1] += value` for `j ≥ 1`; unchanged for the reference cluster."""
    index = jnp.maximum(j - 1, 0)
    old = lax.dynamic_index_in_dim(per_cluster, index, axis=0, keepdims=False)
    return lax.dynamic_update_index_in_dim(per_cluster, jnp.where(j >= 1, old + value, old), index, axis=0)


def _matrix(shared: Array, per_cluster: Array, j: Array) -> Array:
    """`M_j = W + V_j` (`W` for the reference cluster `j = 0`), one `D×n` slice."""
    return shared + _slot(per_cluster, j)


def _each_piece(heights: tuple[int, ...], table: tuple[Array, ...], body: Any, carry: Any) -> Any:
    """`carry = body(height, cluster, first, end, carry)` for every piece: one loop per static height."""
    cluster, first, end, runs = table
    for index, height in enumerate(heights):

        def step(i: Array, carry: Any, height: int = height) -> Any:
            return body(height, cluster[i], first[i], end[i], carry)

        carry = lax.fori_loop(runs[index - 1] if index else 0, runs[index], step, carry)
    return carry


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _grouped(shared: Array, per_cluster: Array, bias: Array, y: Array, table: tuple[Array, ...], tile: int) -> Array:
    s, d = y.shape[0], shared.shape[0]

    def product(height: int, j: Array, first: Array, end: Array, out: Array) -> Array:
        row0, keep = _rows(first, end, s, height)
        rows = lax.dynamic_slice_in_dim(y, row0, height, axis=0)
        value = lax.dot_general(rows, _matrix(shared, per_cluster, j), (((1,), (1,)), ((), ()))) + _slot(bias, j)
        old = lax.dynamic_slice_in_dim(out, row0, height, axis=0)
        return lax.dynamic_update_slice_in_dim(out, jnp.where(keep, value, old), row0, axis=0)

    out: Array = _each_piece(_heights(s, tile), table, product, jnp.zeros((s, d), y.dtype))
    return out


def _grouped_fwd(
    shared: Array, per_cluster: Array, bias: Array, y: Array, table: tuple[Array, ...], tile: int
) -> tuple[Array, tuple[Any, ...]]:
    return _grouped(shared, per_cluster, bias, y, table, tile), (shared, per_cluster, bias, y, table)


def _grouped_bwd(tile: int, residuals: tuple[Any, ...], g: Array) -> tuple[Any, ...]:
    shared, per_cluster, bias, y, table = residuals
    s = y.shape[0]
    heights = _heights(s, tile)

    def grads(
        height: int, j: Array, first: Array, end: Array, carry: tuple[Array, Array, Array]
    ) -> tuple[Array, Array, Array]:
        # ∂M_j = Σ over the piece's rows of g yᵀ: into ∂W (every cluster) and V's slice j
        d_shared, d_cluster, d_bias = carry
        row0, g_rows = _masked_rows(g, first, end, height)
        rows = lax.dynamic_slice_in_dim(y, row0, height, axis=0)
        d_matrix = lax.dot_general(g_rows, rows, (((0,), (0,)), ((), ())))  # (D, n)
        return d_shared + d_matrix, _add_slot(d_cluster, j, d_matrix), _add_slot(d_bias, j, g_rows.sum(axis=0))

    init = (jnp.zeros_like(shared), jnp.zeros_like(per_cluster), jnp.zeros_like(bias))
    d_shared, d_cluster, d_bias = _each_piece(heights, table, grads, init)

    def d_y_piece(height: int, j: Array, first: Array, end: Array, d_y: Array) -> Array:
        # a loop of its own, so that XLA drops it whole when ∂y is not needed (sampled states)
        row0, g_rows = _masked_rows(g, first, end, height)
        old = lax.dynamic_slice_in_dim(d_y, row0, height, axis=0)
        return lax.dynamic_update_slice_in_dim(d_y, old + g_rows @ _matrix(shared, per_cluster, j), row0, axis=0)

    d_y = _each_piece(heights, table, d_y_piece, jnp.zeros_like(y))
    return d_shared, d_cluster, d_bias, d_y, tuple(None for _ in table)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def cluster_affine_sorted(
    shared: Array, per_cluster: Array, bias: Array, y: Array, k: Array, *, tile_rows: int | None = None
) -> Array:
    r"""`out[s] = (W + V_{k_s}) y_s + u_{k_s}` for states **sorted by cluster**.

    $$
    \text{out}_s = W y_s + [k_s \ge 1]\,(V_{k_s - 1} y_s + u_{k_s - 1})
    $$

    Args:
      shared: `W`, `(D, n)`, used by every cluster.
      per_cluster: `V`, `(K−1, D, n)`; cluster `k ≥ 1` adds `V[k−1]`.
      bias: `U`ᵀ, `(K−1, D)`; cluster `k ≥ 1` adds `bias[k−1]`.
      y: `(S, n)` latent statistics, rows ordered so that `k` is non-decreasing.
      k: `(S,)` integer clusters in `0..K−1`, **sorted ascending** (unsorted input gives
        wrong rows on a CPU; it is not checked, being a traced value).
      tile_rows: the height step `T` of the pieces on a CPU (static); default `min(64, S)`.

    Returns:
      `(S, D)` in the sorted order of the input.

    On a CPU each cluster's rows are cut into pieces of at most `8T` rows and each piece is one
    `(h, n)·(n, D)` product, `h` the smallest multiple of `T` covering it, with
    `M_k = W + V_k` formed per piece (a `D×n` sum, no `(K, D, n)` array); rows of `h`
    that are not the piece's own are masked. The hand-written backward pass walks the same
    pieces, accumulating `∂M_k` once per piece into `∂W = Σ_k ∂M_k` and `∂V_k`, with
    `∂u_k` and (in a loop of its own, dropped by XLA when unused) `∂y`. Elsewhere (GPU,
    TPU) the one-hot products of [`cluster_affine_dense`][expfam.affine.cluster_affine_dense] run instead.
    """
    km1, d, n = per_cluster.shape
    if shared.shape != (d, n):
        raise ValueError(f"shared must have shape ({d}, {n}) like each per_cluster slice, got {shared.shape}")
    if bias.shape != (km1, d):
        raise ValueError(f"bias must have shape ({km1}, {d}), got {bias.shape}")
    if y.ndim != 2 or y.shape[1] != n:
        raise ValueError(f"y must have shape (S, {n}), got {y.shape}")
    s = y.shape[0]
    if k.shape != (s,):
        raise ValueError(f"k must have shape ({s},), got {k.shape}")
    dtype = jnp.result_type(shared, per_cluster, bias, y)
    if s == 0:
        return jnp.zeros((0, d), dtype)
    tile = min(int(tile_rows) if tile_rows is not None else TILE_ROWS, s)
    if tile < 1:
        raise ValueError("tile_rows must be positive")
    k = k.astype(jnp.int32)

    def windows(shared: Array, per_cluster: Array, bias: Array, y: Array, k: Array) -> Array:
        return _grouped(shared, per_cluster, bias, y, _pieces(k, km1 + 1, _heights(s, tile)), tile)

    out: Array = lax.platform_dependent(
        shared.astype(dtype),
        per_cluster.astype(dtype),
        bias.astype(dtype),
        y.astype(dtype),
        k,
        cpu=windows,
        default=cluster_affine_dense,
    )
    return out
