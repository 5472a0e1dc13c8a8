r"""The `xy` block: X↔Y coupling shared by all clusters.

$$
L(z) = W y,\qquad L^\top(s) = \{b_y \mathrel{+}= W^\top s\},\qquad W\in\mathbb{R}^{D\times n}.
$$
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
class LatentCoupling(InteractionBlock):
    """`W ∈ ℝ^{D×n}`: every latent unit couples to every observable coordinate."""

    name: ClassVar[str] = "xy"
    vanishes_at_zero_latent: ClassVar[bool] = True

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.latent_size)

    def init(self, key: Array) -> Array:
        """`W ~ N(0, (0.1/√(D·n))²)`."""
        scale = 0.1 / math.sqrt(self.observable_size * self.latent_size)
        return scale * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        return params @ statistics["b_y"]

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        return y @ params.T

    def cluster_affine(self, params: Array) -> ClusterAffine:
        """`W` is shared by every cluster."""
        return ClusterAffine(shared=params)

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        return {"b_y": statistic @ params}
