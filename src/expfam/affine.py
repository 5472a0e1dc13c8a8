r"""The grouped product: per-cluster matrices applied to states grouped by cluster.

The blocks `xy`, `xk` and `xyk` all add to the observable's parameters an offset that,
for a fixed cluster `k`, is affine in the latent statistics:

$$
\sum_b L_b(s_Z(y, k)) = (W + V_k)\, s_Y(y) + u_k,\qquad V_0 = 0,\ u_0 = 0.
$$

Evaluated block by block at `S` sampled states this is a dense `(S, n)·(n, D)` product
for `W`, a grouped product of the same size for `V_k` and a one-hot product for `u_k`.
[`cluster_affine_sorted`][expfam.affine.cluster_affine_sorted] does all three as **one** grouped product with the
per-cluster matrix `M_k = W + V_k` (formed piece by piece, never as a `(K, D, n)`
array) and the bias `u_k` added in the same product: the multiply-adds of one
`(S, n)·(n, D)` product instead of two. Its input is sorted by cluster and so is its
output, which lets the caller reduce each row (`ψ_X`) before undoing the sort: the
`(S, D)` arrays are never permuted, forward or backward
([`expfam.model.Harmonium.observable_log_partition`][expfam.model.Harmonium.observable_log_partition]).
The `xyk` block's own offset `V_k y` ([`cluster_matvec`][expfam.affine.cluster_matvec]) is the
same kernel without `W` and `u`, for states in any order: sort, the grouped product, unsort.

On a CPU each cluster's rows are cut into *pieces* of at most `8·T` rows (`T = 64`), and
each piece is one product whose height is the smallest multiple of `T` that covers it; the
pieces are run in one loop per height. A cluster of up to 512 states is then one product and,
in the backward pass (one `jax.custom_vjp`), one `D × n` accumulation of `∂M_k`. On an
accelerator the one-hot products of [`cluster_affine_dense`][expfam.affine.cluster_affine_dense]
run instead: there the piece loops would be a chain of small kernels.

Measured with `python benchmarks/step_time.py` and, at the time, two investigation scripts since
removed (docs/benchmarks-history.md, "One grouped product for the full model" and "Pieces of one
height per cluster").
"""

from __future__ import annotations

import functools
import operator
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from expfam.errors import ShapeError

__all__ = ["cluster_affine_dense", "cluster_affine_sorted", "cluster_matvec", "cluster_matvec_dense"]

Array = jax.Array

#: Height step `T` of the grouped product's pieces on a CPU: each piece is a multiple of it.
TILE_ROWS = 64
#: Pieces are at most `HEIGHT_STEPS · T` rows; a cluster with more rows takes several.
HEIGHT_STEPS = 8


def cluster_affine_dense(shared: Array | None, per_cluster: Array, bias: Array | None, y: Array, k: Array) -> Array:
    """Reference (and accelerator) form: `y Wᵀ + (y ⊗ e_k) V + e_k Uᵀ` with one-hot products.

    `K − 1` times the multiply-adds of the grouped form; a GPU runs it as three large
    products, where the piece loops would be a chain of small kernels. `shared` (`W`) or
    `bias` (`U`ᵀ) may be `None`: that term is left out.
    """
    km1, d, n = per_cluster.shape
    onehot = jax.nn.one_hot(k, km1 + 1, dtype=y.dtype)[:, 1:]
    features = (y[:, :, None] * onehot[:, None, :]).reshape(y.shape[0], n * km1)
    stacked = jnp.transpose(per_cluster, (2, 0, 1)).reshape(n * km1, d)
    terms = [y @ shared.T] if shared is not None else []
    terms.append(features @ stacked)
    if bias is not None:
        terms.append(onehot @ bias)
    out: Array = functools.reduce(operator.add, terms)
    return out


def cluster_matvec_dense(matrices: Array, y: Array, k: Array) -> Array:
    """Reference for [`cluster_matvec`][expfam.affine.cluster_matvec]: the one-hot product `(y ⊗ e_k) V` alone."""
    return cluster_affine_dense(None, matrices, None, y, k)


def _heights(s: int, tile: int) -> tuple[int, ...]:
    """Static piece heights `T, 2T, …, P·T` with `P = min(HEIGHT_STEPS, ⌊S / T⌋)`: every one fits in `S` rows."""
    return tuple(tile * m for m in range(1, max(1, min(HEIGHT_STEPS, s // tile)) + 1))


def _pieces(k: Array, n_clusters: int, heights: tuple[int, ...], *, skip_reference: bool) -> tuple[Array, ...]:
    r"""The pieces of sorted `k`, ordered by height: `(cluster, first, end, runs)`.

    Cluster `j` owns rows `[a_j, b_j)` and is cut into `⌈c_j / H⌉` pieces of at most `H`
    rows (`H` the tallest height); with `skip_reference` the reference cluster `j = 0` has
    none (its rows stay zero). Each piece runs as one product of the smallest height that
    covers it. The pieces are listed by height, in a static-length list of
    `K + ⌊S / H⌋ ≥ Σ_j ⌈c_j / H⌉` slots (unused slots last); `runs[h]` is where the pieces of
    height index `h` end in that list.
    """
    tallest, tile, s = heights[-1], heights[0], k.shape[0]
    counts = jnp.bincount(k, length=n_clusters).astype(jnp.int32)
    ends = jnp.cumsum(counts).astype(jnp.int32)
    per_cluster = (counts + tallest - 1) // tallest
    if skip_reference:
        per_cluster = per_cluster.at[0].set(0)
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


def _matrix(shared: Array | None, per_cluster: Array, j: Array) -> Array:
    """`M_j = W + V_j` (`W` for the reference cluster `j = 0`; `V_j` alone without `W`), one `D×n` slice."""
    return _slot(per_cluster, j) if shared is None else shared + _slot(per_cluster, j)


def _each_piece(heights: tuple[int, ...], table: tuple[Array, ...], body: Any, carry: Any) -> Any:
    """`carry = body(height, cluster, first, end, carry)` for every piece: one loop per static height."""
    cluster, first, end, runs = table
    for index, height in enumerate(heights):

        def step(i: Array, carry: Any, height: int = height) -> Any:
            return body(height, cluster[i], first[i], end[i], carry)

        carry = lax.fori_loop(runs[index - 1] if index else 0, runs[index], step, carry)
    return carry


@partial(jax.custom_vjp, nondiff_argnums=(6,))
def _grouped(
    shared: Array | None,
    per_cluster: Array,
    bias: Array | None,
    y: Array,
    table: tuple[Array, ...],
    permutation: tuple[Array, Array] | None,
    tile: int,
) -> Array:
    return _grouped_fwd(shared, per_cluster, bias, y, table, permutation, tile)[0]


def _grouped_fwd(
    shared: Array | None,
    per_cluster: Array,
    bias: Array | None,
    y: Array,
    table: tuple[Array, ...],
    permutation: tuple[Array, Array] | None,
    tile: int,
) -> tuple[Array, tuple[Any, ...]]:
    """The grouped product of the rows of `y` sorted by `permutation = (order, rank)` (already sorted if `None`)."""
    y_sorted = y if permutation is None else y[permutation[0]]
    s, d = y.shape[0], per_cluster.shape[1]

    def product(height: int, j: Array, first: Array, end: Array, out: Array) -> Array:
        row0, keep = _rows(first, end, s, height)
        rows = lax.dynamic_slice_in_dim(y_sorted, row0, height, axis=0)
        value = lax.dot_general(rows, _matrix(shared, per_cluster, j), (((1,), (1,)), ((), ())))
        if bias is not None:
            value = value + _slot(bias, j)
        old = lax.dynamic_slice_in_dim(out, row0, height, axis=0)
        return lax.dynamic_update_slice_in_dim(out, jnp.where(keep, value, old), row0, axis=0)

    out: Array = _each_piece(_heights(s, tile), table, product, jnp.zeros((s, d), y.dtype))
    if permutation is not None:
        out = out[permutation[1]]
    return out, (shared, per_cluster, bias, y_sorted, table, permutation)


def _grouped_bwd(tile: int, residuals: tuple[Any, ...], g: Array) -> tuple[Any, ...]:
    shared, per_cluster, bias, y, table, permutation = residuals
    if permutation is not None:
        g = g.astype(y.dtype)[permutation[0]]
    heights = _heights(y.shape[0], tile)

    def grads(height: int, j: Array, first: Array, end: Array, carry: tuple[Any, ...]) -> tuple[Any, ...]:
        # ∂M_j = Σ over the piece's rows of g yᵀ: into ∂W (every cluster) and V's slice j
        d_shared, d_cluster, d_bias = carry
        row0, g_rows = _masked_rows(g, first, end, height)
        rows = lax.dynamic_slice_in_dim(y, row0, height, axis=0)
        d_matrix = lax.dot_general(g_rows, rows, (((0,), (0,)), ((), ())))  # (D, n)
        return (
            None if d_shared is None else d_shared + d_matrix,
            _add_slot(d_cluster, j, d_matrix),
            None if d_bias is None else _add_slot(d_bias, j, g_rows.sum(axis=0)),
        )

    init = tuple(None if a is None else jnp.zeros_like(a) for a in (shared, per_cluster, bias))
    d_shared, d_cluster, d_bias = _each_piece(heights, table, grads, init)

    def d_y_piece(height: int, j: Array, first: Array, end: Array, d_y: Array) -> Array:
        # a loop of its own, so that XLA drops it whole when ∂y is not needed (sampled states)
        row0, g_rows = _masked_rows(g, first, end, height)
        old = lax.dynamic_slice_in_dim(d_y, row0, height, axis=0)
        return lax.dynamic_update_slice_in_dim(d_y, old + g_rows @ _matrix(shared, per_cluster, j), row0, axis=0)

    d_y = _each_piece(heights, table, d_y_piece, jnp.zeros_like(y))
    if permutation is not None:
        d_y = d_y[permutation[1]]
    return d_shared, d_cluster, d_bias, d_y, tuple(None for _ in table), None if permutation is None else (None, None)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def _check_shapes(shared: Array | None, per_cluster: Array, bias: Array | None, y: Array, k: Array) -> None:
    """Raise [`ShapeError`][expfam.errors.ShapeError] naming the argument whose shape does not fit `per_cluster`."""
    if per_cluster.ndim != 3:
        raise ShapeError(
            f"per_cluster must have shape (K-1, D, n), one D×n matrix per cluster 1..K-1, got {per_cluster.shape}; "
            "pass the matrices stacked along a leading cluster axis"
        )
    km1, d, n = per_cluster.shape
    if shared is not None and shared.shape != (d, n):
        raise ShapeError(
            f"shared must have shape ({d}, {n}) like each per_cluster slice, got {shared.shape}; "
            "pass W as a D×n matrix (transpose it if it is n×D)"
        )
    if bias is not None and bias.shape != (km1, d):
        raise ShapeError(
            f"bias must have shape ({km1}, {d}), one row per cluster 1..K-1, got {bias.shape}; "
            "pass Uᵀ (transpose a D×(K-1) U)"
        )
    if y.ndim != 2 or y.shape[1] != n:
        raise ShapeError(
            f"y must have shape (S, {n}), one row of latent statistics per state, got {y.shape}; "
            "flatten the states to rows of the matrices' width"
        )
    if k.shape != (y.shape[0],):
        raise ShapeError(
            f"k must have shape ({y.shape[0]},), one cluster per row of y, got {k.shape}; "
            "pass one integer cluster per state"
        )


def _tile(tile_rows: int | None, s: int) -> int:
    """The height step `T`: `tile_rows` (default `TILE_ROWS`) clipped to the `S` rows."""
    tile = min(int(tile_rows) if tile_rows is not None else TILE_ROWS, s)
    if tile < 1:
        raise ValueError(f"tile_rows must be a positive number of rows, got {tile_rows}; pass None for {TILE_ROWS}")
    return tile


def cluster_affine_sorted(
    shared: Array | None,
    per_cluster: Array,
    bias: Array | None,
    y: Array,
    k: Array,
    *,
    tile_rows: int | None = None,
) -> Array:
    r"""`out[s] = (W + V_{k_s}) y_s + u_{k_s}` for states **sorted by cluster**.

    $$
    \text{out}_s = W y_s + [k_s \ge 1]\,(V_{k_s - 1} y_s + u_{k_s - 1})
    $$

    Args:
      shared: `W`, `(D, n)`, used by every cluster; `None` for none (then the reference
        cluster's rows are zero and cost nothing).
      per_cluster: `V`, `(K−1, D, n)`; cluster `k ≥ 1` adds `V[k−1]`.
      bias: `U`ᵀ, `(K−1, D)`; cluster `k ≥ 1` adds `bias[k−1]`; `None` for none.
      y: `(S, n)` latent statistics, rows ordered so that `k` is non-decreasing.
      k: `(S,)` integer clusters in `0..K−1`, **sorted ascending** (unsorted input gives
        wrong rows on a CPU; it is not checked, being a traced value).
      tile_rows: the height step `T` of the pieces on a CPU (static); default `min(64, S)`.

    Returns:
      `(S, D)` in the sorted order of the input.

    Raises:
      ShapeError: an argument's shape does not fit `per_cluster`'s `(K−1, D, n)`.

    On a CPU each cluster's rows are cut into pieces of at most `8T` rows and each piece is one
    `(h, n)·(n, D)` product, `h` the smallest multiple of `T` covering it, with
    `M_k = W + V_k` formed per piece (a `D×n` sum, no `(K, D, n)` array); rows of `h`
    that are not the piece's own are masked. The hand-written backward pass walks the same
    pieces, accumulating `∂M_k` once per piece into `∂W = Σ_k ∂M_k` and `∂V_k`, with
    `∂u_k` and (in a loop of its own, dropped by XLA when unused) `∂y`. Elsewhere (GPU,
    TPU) the one-hot products of [`cluster_affine_dense`][expfam.affine.cluster_affine_dense] run instead.

    Examples:
        >>> import jax.numpy as jnp
        >>> out = cluster_affine_sorted(jnp.ones((2, 3)), jnp.ones((1, 2, 3)), jnp.ones((1, 2)),
        ...                             jnp.ones((4, 3)), jnp.array([0, 0, 1, 1]))
        >>> out[:, 0].tolist()
        [3.0, 3.0, 7.0, 7.0]
    """
    return _grouped_product(shared, per_cluster, bias, y, k, tile_rows, sort=False)


def cluster_matvec(matrices: Array, y: Array, k: Array, *, tile_rows: int | None = None) -> Array:
    """Per-sample cluster matrix-vector product for states in any order.

    `out[s] = matrices[k[s] - 1] @ y[s]` for `k[s] >= 1` and `out[s] = 0` for
    `k[s] == 0`: sort by cluster, the grouped product of
    [`cluster_affine_sorted`][expfam.affine.cluster_affine_sorted] without `W` and `u`
    (the reference cluster's rows are skipped), unsort. Works under `jit`, `grad` and
    `vmap`; being a `custom_vjp` it supports reverse mode only (no `jvp`).

    Args:
      matrices: `(K-1, D, n)` offset matrices of clusters `1..K-1`.
      y: `(S, n)` latent vectors (any floats; binary in the mixture model).
      k: `(S,)` integer cluster indices in `0..K-1`, any order. Values outside that range
        give unspecified results.
      tile_rows: the height step `T` of the pieces on a CPU (static); default `min(64, S)`.

    Returns:
      `(S, D)` array in `result_type(matrices, y)`, in the order of the input.

    Raises:
      ShapeError: `y` or `k` does not fit `matrices`' `(K−1, D, n)`.

    The sort and unsort are part of the kernel's `custom_vjp`: its backward pass gathers the
    cotangent into cluster order and `∂y` back, instead of the scatter-adds that autodiff of
    the two permutations would give. On accelerators the dense one-hot product
    [`cluster_matvec_dense`][expfam.affine.cluster_matvec_dense] runs instead.

    Examples:
        >>> import jax.numpy as jnp
        >>> cluster_matvec(2 * jnp.ones((1, 2, 3)), jnp.ones((3, 3)), jnp.array([1, 0, 1]))[:, 0].tolist()
        [6.0, 0.0, 6.0]
    """
    return _grouped_product(None, matrices, None, y, k, tile_rows, sort=True)


def _grouped_product(
    shared: Array | None,
    per_cluster: Array,
    bias: Array | None,
    y: Array,
    k: Array,
    tile_rows: int | None,
    *,
    sort: bool,
) -> Array:
    """Check shapes, then the grouped product on a CPU and the one-hot form elsewhere (`lax.platform_dependent`)."""
    _check_shapes(shared, per_cluster, bias, y, k)
    km1, d, _ = per_cluster.shape
    s = y.shape[0]
    dtype = jnp.result_type(*(a for a in (shared, per_cluster, bias, y) if a is not None))
    if s == 0 or (km1 == 0 and shared is None):
        return jnp.zeros((s, d), dtype)
    tile = _tile(tile_rows, s)
    heights = _heights(s, tile)
    k = k.astype(jnp.int32)
    has_shared, has_bias = shared is not None, bias is not None
    arrays = [a.astype(dtype) for a in (shared, per_cluster, bias, y) if a is not None]

    def unpack(arrays: tuple[Array, ...]) -> tuple[Array | None, Array, Array | None, Array]:
        rest = list(arrays)
        w = rest.pop(0) if has_shared else None
        v = rest.pop(0)
        u = rest.pop(0) if has_bias else None
        return w, v, u, rest[0]

    def pieces(k: Array, *arrays: Array) -> Array:
        w, v, u, y = unpack(arrays)
        permutation = None
        if sort:
            order = jnp.argsort(k, stable=True).astype(jnp.int32)
            rank = jnp.zeros((s,), jnp.int32).at[order].set(jnp.arange(s, dtype=jnp.int32))
            k, permutation = k[order], (order, rank)
        table = _pieces(k, km1 + 1, heights, skip_reference=shared is None)
        return _grouped(w, v, u, y, table, permutation, tile)

    def dense(k: Array, *arrays: Array) -> Array:
        return cluster_affine_dense(*unpack(arrays), k)

    # The piece loops are a chain of small products: right for a CPU, where the one-hot form costs
    # K−1 times the arithmetic. On an accelerator each piece is a kernel launch and the loop measured
    # 5x slower than the dense product (docs/benchmarks.md, GPU); XLA picks the branch per platform.
    out: Array = lax.platform_dependent(k, *arrays, cpu=pieces, default=dense)
    return out
