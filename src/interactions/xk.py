r"""The `xk` block: a per-cluster observable bias.

$$
L(z) = U e_k,\qquad L^\top(s) = \{b_k \mathrel{+}= U^\top s\},\qquad U\in\mathbb{R}^{D\times(K-1)}.
$$

At sampled clusters the offset is the one-hot product `e_k Uᵀ` (cluster 0, the
reference, adds nothing): `(S, K−1)·(K−1, D)`, about 4% of the `xy` product at
K = 30, n = 128, and its gradient is a product as well (a gather's gradient would be a
scatter-add over `S × D` entries, slower on CPU; docs/benchmarks-history.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax

from expfam.block import ClusterAffine, InteractionBlock, LatentStatistics, register_block
from expfam.family import Array


@final
@register_block
@dataclass(frozen=True)
class ClusterBias(InteractionBlock):
    """`U ∈ ℝ^{D×(K−1)}`: each cluster k ≥ 1 shifts the observable bias by `U[:, k−1]`."""

    name: ClassVar[str] = "xk"

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.n_clusters - 1)

    def init(self, key: Array) -> Array:
        """`U ~ N(0, (0.1/√D)²)`."""
        scale = 0.1 / math.sqrt(self.observable_size)
        return scale * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        return params @ statistics["b_k"]

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        """`U e_k` as one product `onehot(k)[:, 1:] Uᵀ`: its gradient is a product too, not a scatter."""
        return jax.nn.one_hot(k, self.n_clusters, dtype=params.dtype)[:, 1:] @ params.T

    def cluster_affine(self, params: Array) -> ClusterAffine:
        """Cluster `k ≥ 1` adds the row `U[:, k−1]ᵀ`."""
        return ClusterAffine(bias=params.T)

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        return {"b_k": statistic @ params}
