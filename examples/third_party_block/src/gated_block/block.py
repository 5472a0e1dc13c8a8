r"""The ``xy_gated`` block: an X↔Y matrix shared by the clusters ``k ≥ 1``, off in cluster 0.

.. math::

    L(z) = G\,y\,[k \ge 1] = G \sum_{j=1}^{K-1} (y \otimes e_k)_{:, j},\qquad
    L^\top(s) = \{W_{yk}[:, j] \mathrel{+}= G^\top s \ \text{for every } j\},\qquad
    G \in \mathbb{R}^{D\times n}.

``y·[k ≥ 1]`` is the sum of the columns of the latent statistic ``y ⊗ e_k``, so
``L`` is linear in ``s_Z`` (a block must be: the recognition model uses its
adjoint), and the adjoint adds the same vector ``Gᵀs`` to every column of
``W_yk``. Cluster 0 then models "background" data that does not use ``y``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.block import InteractionBlock, LatentStatistics, register_block
from expfam.family import Array


@final
@register_block
@dataclass(frozen=True)
class GatedCoupling(InteractionBlock):
    """``G ∈ ℝ^{D×n}``: ``θ_X += G y`` in every cluster except the reference cluster 0."""

    name: ClassVar[str] = "xy_gated"

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.latent_size)

    def init(self, key: Array) -> Array:
        """``G ~ N(0, (0.1/√(D·n))²)``, like the built-in ``xy`` block."""
        scale = 0.1 / math.sqrt(self.observable_size * self.latent_size)
        return scale * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        return params @ jnp.sum(statistics["W_yk"], axis=-1)

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        return (y @ params.T) * (k >= 1)[:, None]

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        per_unit = statistic @ params  # (B, n)
        return {"W_yk": jnp.broadcast_to(per_unit[:, :, None], (*per_unit.shape, self.n_clusters - 1))}
