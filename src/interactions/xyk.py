r"""The `xyk` block: one X↔Y matrix per cluster.

$$
L(z) = V_k\, y\ (0 \text{ if } k = 0),\qquad
L^\top(s) = \{W_{yk} \mathrel{+}= V^\top s\}\ \ (\text{an } n\times(K-1) \text{ matrix}).
$$

Storage: `V` has shape `(K−1, D, n)`; `V[k−1]` is the `D×n` matrix of cluster `k` (the usual notation writes
the same tensor as `D×n×(K−1)`; the cluster axis comes first here so that each cluster's slice is contiguous).
At sampled clusters the offset groups samples by cluster
([`expfam.affine.cluster_matvec`][expfam.affine.cluster_matvec]) instead of multiplying by the
dense one-hot product `y ⊗ e_k`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.affine import cluster_matvec
from expfam.block import ClusterAffine, InteractionBlock, LatentStatistics, register_block
from expfam.family import Array


@final
@register_block
@dataclass(frozen=True)
class ClusterCoupling(InteractionBlock):
    """`V ∈ ℝ^{(K−1)×D×n}`: cluster k ≥ 1 adds its own X↔Y matrix `V[k−1]`."""

    name: ClassVar[str] = "xyk"
    vanishes_at_zero_latent: ClassVar[bool] = True

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.n_clusters - 1, self.observable_size, self.latent_size)

    def init(self, key: Array) -> Array:
        """`V ~ N(0, (0.1/√(D·n))²)`."""
        scale = 0.1 / math.sqrt(self.observable_size * self.latent_size)
        return scale * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        return jnp.einsum("jdn,nj->d", params, statistics["W_yk"])

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        return cluster_matvec(params, y, k)

    def cluster_affine(self, params: Array) -> ClusterAffine:
        """Cluster `k ≥ 1` adds its matrix `V[k−1]`."""
        return ClusterAffine(per_cluster=params)

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        return {"W_yk": cluster_adjoint(params, statistic)}


@jax.custom_vjp
def cluster_adjoint(matrices: Array, statistic: Array) -> Array:
    r"""`out[b, :, j] = V_jᵀ s_b` for `V` `(K−1, D, n)` and `s` `(B, D)`: shape `(B, n, K−1)`.

    One `(B, D)·(D, n)` product per cluster, each reading its contiguous slice
    `V[j]`, instead of one `(B, D)·(D, n(K−1))` product that needs `V`
    transposed to `(D, n, K−1)`. The hand-written backward pass returns
    `dV[j] = sᵀ G[:, :, j]` directly in `V`'s layout (autodiff of the einsum
    returned it transposed, a copy of `V`'s size that XLA then repeated inside
    each Adam moment's fusion), and `ds = Σ_j G[:, :, j] V_jᵀ`.
    """
    return jnp.stack([statistic @ matrices[j] for j in range(matrices.shape[0])], axis=-1)


def _cluster_adjoint_fwd(matrices: Array, statistic: Array) -> tuple[Array, tuple[Array, Array]]:
    return cluster_adjoint(matrices, statistic), (matrices, statistic)


def _cluster_adjoint_bwd(residuals: tuple[Array, Array], cotangent: Array) -> tuple[Array, Array]:
    matrices, statistic = residuals
    per_cluster = jnp.moveaxis(cotangent, -1, 0)  # (K-1, B, n)
    d_matrices, d_statistic = jax.lax.platform_dependent(
        matrices, statistic, per_cluster, cpu=_adjoint_grads_looped, default=_adjoint_grads_batched
    )
    return d_matrices.astype(matrices.dtype), d_statistic.astype(statistic.dtype)


def _adjoint_grads_looped(matrices: Array, statistic: Array, per_cluster: Array) -> tuple[Array, Array]:
    """`dV[j] = sᵀ G_j` and `ds = Σ_j G_j V_jᵀ` one cluster at a time (CPU: no large temporaries).

    `sᵀ` is laid out once, `(D, B)`, before the loop. Written as `s.T @ G_j`, each
    product's left operand contracts over its leading axis, and XLA's CPU backend runs it as a
    plain dot; laid out, each is a `(D, B)·(B, n)` product that XLA gives to its faster
    fused kernels (docs/benchmarks-history.md).
    """
    transposed = jax.lax.optimization_barrier(statistic.T)  # type: ignore[no-untyped-call]
    d_matrices = jax.lax.map(lambda g: transposed @ g, per_cluster)
    d_statistic = jnp.sum(jax.lax.map(lambda pair: pair[0] @ pair[1].T, (per_cluster, matrices)), axis=0)
    return d_matrices, d_statistic


def _adjoint_grads_batched(matrices: Array, statistic: Array, per_cluster: Array) -> tuple[Array, Array]:
    """The same two products as batched contractions (accelerators: one kernel each, not a loop)."""
    d_matrices = jnp.einsum("bd,jbn->jdn", statistic, per_cluster)
    d_statistic = jnp.einsum("jbn,jdn->bd", per_cluster, matrices)
    return d_matrices, d_statistic


cluster_adjoint.defvjp(_cluster_adjoint_fwd, _cluster_adjoint_bwd)
