r"""The ``xy_scaled`` block: an X↔Y matrix whose initial scale is an option.

.. math::

    L(z) = W y,\qquad L^\top(s) = \{b_y \mathrel{+}= W^\top s\},\qquad
    W_0 \sim \mathcal N\!\left(0, \left(\tfrac{\text{init\_scale}}{\sqrt{D n}}\right)^2\right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax

from expfam.block import InteractionBlock, LatentStatistics, register_block
from expfam.errors import ConfigurationError
from expfam.family import Array


@final
@register_block
@dataclass(frozen=True)
class ScaledCoupling(InteractionBlock):
    """``W ∈ ℝ^{D×n}`` initialised at scale ``init_scale / √(D·n)`` (option ``init_scale``)."""

    name: ClassVar[str] = "xy_scaled"

    observable_size: int
    latent_size: int
    n_clusters: int
    init_scale: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.init_scale, (int, float)) and math.isfinite(self.init_scale) and self.init_scale >= 0):
            raise ConfigurationError(
                f"xy_scaled: init_scale must be a finite number ≥ 0, got {self.init_scale!r}",
                offending=self.init_scale,
            )

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.latent_size)

    def init(self, key: Array) -> Array:
        scale = self.init_scale / math.sqrt(self.observable_size * self.latent_size)
        return scale * jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        return params @ statistics["b_y"]

    def offset(self, params: Array, y: Array, k: Array) -> Array:
        return y @ params.T

    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        return {"b_y": statistic @ params}
