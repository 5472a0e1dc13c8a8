r"""One grouped product for every block that is affine in ``s_Y(y)`` within each cluster.

The blocks ``xy``, ``xk`` and ``xyk`` all add to the observable's parameters an offset that,
for a fixed cluster ``k``, is affine in the latent statistics:

.. math::

    \sum_b L_b(s_Z(y, k)) = (W + V_k)\, s_Y(y) + u_k,\qquad V_0 = 0,\ u_0 = 0.

Evaluated block by block at ``S`` sampled states this is a dense ``(S, n)·(n, D)`` product
for ``W``, a grouped product of the same size for ``V_k``
(:func:`interactions.grouped.cluster_matvec`) and a one-hot product for ``u_k``.
:func:`cluster_affine_sorted` does all three as **one** grouped product with the
per-cluster matrix ``M_k = W + V_k`` (formed cluster by cluster, never as a ``(K, D, n)``
array) and the bias ``u_k`` added in the same window: the multiply-adds of one
``(S, n)·(n, D)`` product instead of two. Its input is sorted by cluster and so is its
output, which lets the caller reduce each row (``ψ_X``) before undoing the sort: the
``(S, D)`` arrays are never permuted, forward or backward
(:meth:`expfam.model.Harmonium.observable_log_partition`).

Measured with ``python benchmarks/full_floor.py`` and ``benchmarks/step_time.py``
(docs/benchmarks.md, "One grouped product for the full model").
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["cluster_affine_dense", "cluster_affine_sorted"]

Array = jax.Array

#: Rows per window of the grouped product on a CPU (64 measured best for ``cluster_matvec``).
TILE_ROWS = 64


def cluster_affine_dense(shared: Array, per_cluster: Array, bias: Array, y: Array, k: Array) -> Array:
    """Reference (and accelerator) form: ``y Wᵀ + (y ⊗ e_k) V + e_k Uᵀ`` with one-hot products.

    ``K − 1`` times the multiply-adds of the grouped form; a GPU runs it as three large
    products, where the window loop would be a chain of small kernels.
    """
    km1, d, n = per_cluster.shape
    onehot = jax.nn.one_hot(k, km1 + 1, dtype=y.dtype)[:, 1:]
    features = (y[:, :, None] * onehot[:, None, :]).reshape(y.shape[0], n * km1)
    stacked = jnp.transpose(per_cluster, (2, 0, 1)).reshape(n * km1, d)
    return y @ shared.T + features @ stacked + onehot @ bias


def _clusters(k: Array, n_clusters: int, tile: int) -> tuple[Array, Array, Array]:
    """First row, end row and window count of each cluster's rows in sorted ``k``.

    Cluster ``j`` owns rows ``[start_j, end_j)`` and is covered by ``⌈count_j / T⌉`` windows of
    ``T`` rows.
    """
    counts = jnp.bincount(k, length=n_clusters).astype(jnp.int32)
    ends = jnp.cumsum(counts).astype(jnp.int32)
    return ends - counts, ends, (counts + tile - 1) // tile


def _window(table: tuple[Array, ...], j: Array, w: Array, s: int, tile: int) -> tuple[Array, Array]:
    """Window ``w`` of cluster ``j``: its first row and the mask of the rows that are its own.

    A window that would run past the last row starts at ``S − T`` instead and masks the rows
    before its own first row (they belong to earlier windows).
    """
    starts, ends, _ = table
    first = starts[j] + w * tile
    row0 = jnp.minimum(first, s - tile)
    rows = row0 + jnp.arange(tile, dtype=jnp.int32)
    return row0, ((rows >= first) & (rows < ends[j]))[:, None]


def _slot(per_cluster: Array, j: Array) -> Array:
    """Cluster ``j``'s slice ``per_cluster[j − 1]``, zero for the reference cluster ``j = 0``."""
    value = lax.dynamic_index_in_dim(per_cluster, jnp.maximum(j - 1, 0), axis=0, keepdims=False)
    return jnp.where(j >= 1, value, jnp.zeros_like(value))


def _set_slot(per_cluster: Array, j: Array, value: Array) -> Array:
    """``per_cluster[j − 1] = value`` for ``j ≥ 1``; unchanged for the reference cluster."""
    index = jnp.maximum(j - 1, 0)
    old = lax.dynamic_index_in_dim(per_cluster, index, axis=0, keepdims=False)
    return lax.dynamic_update_index_in_dim(per_cluster, jnp.where(j >= 1, value, old), index, axis=0)


def _matrix(shared: Array, per_cluster: Array, j: Array) -> Array:
    """``M_j = W + V_j`` (``W`` for the reference cluster ``j = 0``), one ``D×n`` slice."""
    return shared + _slot(per_cluster, j)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _grouped(shared: Array, per_cluster: Array, bias: Array, y: Array, table: tuple[Array, ...], tile: int) -> Array:
    s, d = y.shape[0], shared.shape[0]

    def cluster(j: Array, out: Array) -> Array:
        matrix, offset = _matrix(shared, per_cluster, j), _slot(bias, j)  # once per cluster

        def window(w: Array, out: Array) -> Array:
            row0, keep = _window(table, j, w, s, tile)
            rows = lax.dynamic_slice_in_dim(y, row0, tile, axis=0)
            product = lax.dot_general(rows, matrix, (((1,), (1,)), ((), ()))) + offset
            old = lax.dynamic_slice_in_dim(out, row0, tile, axis=0)
            return lax.dynamic_update_slice_in_dim(out, jnp.where(keep, product, old), row0, axis=0)

        inner: Array = lax.fori_loop(0, table[2][j], window, out)
        return inner

    out: Array = lax.fori_loop(0, per_cluster.shape[0] + 1, cluster, jnp.zeros((s, d), y.dtype))
    return out


def _grouped_fwd(
    shared: Array, per_cluster: Array, bias: Array, y: Array, table: tuple[Array, ...], tile: int
) -> tuple[Array, tuple[Any, ...]]:
    return _grouped(shared, per_cluster, bias, y, table, tile), (shared, per_cluster, bias, y, table)


def _grouped_bwd(tile: int, residuals: tuple[Any, ...], g: Array) -> tuple[Any, ...]:
    shared, per_cluster, bias, y, table = residuals
    n_clusters = per_cluster.shape[0] + 1
    s = y.shape[0]

    def rows_of(j: Array, w: Array) -> tuple[Array, Array, Array]:
        row0, keep = _window(table, j, w, s, tile)
        g_rows = jnp.where(keep, lax.dynamic_slice_in_dim(g, row0, tile, axis=0), 0)
        return row0, g_rows, lax.dynamic_slice_in_dim(y, row0, tile, axis=0)

    def cluster(j: Array, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        # ∂M_j accumulates over the cluster's windows in a D×n carry; V's gradient slice is
        # written once per cluster, not once per window.
        d_shared, d_cluster, d_bias = carry

        def window(w: Array, inner: tuple[Array, Array]) -> tuple[Array, Array]:
            _, g_rows, rows = rows_of(j, w)
            d_matrix = inner[0] + lax.dot_general(g_rows, rows, (((0,), (0,)), ((), ())))  # (D, n)
            return d_matrix, inner[1] + g_rows.sum(axis=0)

        init = (jnp.zeros_like(shared), jnp.zeros_like(shared[:, 0]))
        d_matrix, d_offset = lax.fori_loop(0, table[2][j], window, init)
        return d_shared + d_matrix, _set_slot(d_cluster, j, d_matrix), _set_slot(d_bias, j, d_offset)

    init = (jnp.zeros_like(shared), jnp.zeros_like(per_cluster), jnp.zeros_like(bias))
    d_shared, d_cluster, d_bias = lax.fori_loop(0, n_clusters, cluster, init)

    def cluster_y(j: Array, d_y: Array) -> Array:
        # A loop of its own, so that XLA drops it whole when ∂y is not needed (sampled states).
        matrix = _matrix(shared, per_cluster, j)

        def window(w: Array, d_y: Array) -> Array:
            row0, g_rows, _ = rows_of(j, w)
            old = lax.dynamic_slice_in_dim(d_y, row0, tile, axis=0)
            return lax.dynamic_update_slice_in_dim(d_y, old + g_rows @ matrix, row0, axis=0)

        inner: Array = lax.fori_loop(0, table[2][j], window, d_y)
        return inner

    d_y = lax.fori_loop(0, n_clusters, cluster_y, jnp.zeros_like(y))
    return d_shared, d_cluster, d_bias, d_y, tuple(None for _ in table)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def cluster_affine_sorted(
    shared: Array, per_cluster: Array, bias: Array, y: Array, k: Array, *, tile_rows: int | None = None
) -> Array:
    r"""``out[s] = (W + V_{k_s}) y_s + u_{k_s}`` for states **sorted by cluster**.

    .. math::

        \text{out}_s = W y_s + [k_s \ge 1]\,(V_{k_s - 1} y_s + u_{k_s - 1})

    Args:
      shared: ``W``, ``(D, n)``, used by every cluster.
      per_cluster: ``V``, ``(K−1, D, n)``; cluster ``k ≥ 1`` adds ``V[k−1]``.
      bias: ``U``ᵀ, ``(K−1, D)``; cluster ``k ≥ 1`` adds ``bias[k−1]``.
      y: ``(S, n)`` latent statistics, rows ordered so that ``k`` is non-decreasing.
      k: ``(S,)`` integer clusters in ``0..K−1``, **sorted ascending** (unsorted input gives
        wrong rows on a CPU; it is not checked, being a traced value).
      tile_rows: rows per window on a CPU (static); default ``min(64, S)``.

    Returns:
      ``(S, D)`` in the sorted order of the input.

    On a CPU each cluster's rows are covered by windows of ``T`` rows and each window is one
    ``(T, n)·(n, D)`` product with ``M_k = W + V_k``, formed once per cluster (a ``D×n`` sum, no
    ``(K, D, n)`` array); the hand-written backward pass walks the same windows, accumulating
    ``∂M_k`` per cluster, for ``∂W = Σ_k ∂M_k``, ``∂V_k = ∂M_k``, ``∂u_k`` and (in a loop of its
    own, dropped by XLA when unused) ``∂y``. Elsewhere (GPU, TPU) the
    one-hot products of :func:`cluster_affine_dense` run instead.
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
        return _grouped(shared, per_cluster, bias, y, _clusters(k, km1 + 1, tile), tile)

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
