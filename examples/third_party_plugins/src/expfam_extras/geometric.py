r"""The ``geometric`` family: counts of failures before the first success.

.. math::

    s(x) = x,\quad \log h(x) = 0,\quad \psi(\theta) = -\sum_i \log(1 - e^{\theta_i}),\ \theta < 0,
    \quad \eta = \frac{e^\theta}{1 - e^\theta},\quad \theta = \log\eta - \log(1 + \eta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np

from expfam.family import Array, ExponentialFamily, register_family, require_positive


@final
@register_family
@dataclass(frozen=True)
class Geometric(ExponentialFamily):
    r"""``size`` independent geometric counts, ``θ = log(1 − p) < 0``."""

    name: ClassVar[str] = "geometric"
    support_text: ClassVar[str] = "a non-negative integer count"

    size: int

    def __post_init__(self) -> None:
        require_positive("Geometric", size=self.size)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.size,)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.size,)

    def sufficient_statistic(self, x: Array) -> Array:
        return jnp.asarray(x, dtype=jnp.result_type(float))

    def log_base_measure(self, x: Array) -> Array:
        return jnp.zeros(())

    def log_partition(self, params: Array) -> Array:
        return -jnp.sum(jnp.log1p(-jnp.exp(params)))

    def natural_from_means(self, means: Array) -> Array:
        return jnp.log(means) - jnp.log1p(means)

    def expected_log_base_measure(self, params: Array) -> Array:
        return jnp.zeros(())

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        success = jnp.broadcast_to(-jnp.expm1(params), shape + self.param_shape)
        trials = jax.random.geometric(key, success, shape + self.param_shape)
        return (trials - 1).astype(jnp.result_type(float))

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return np.isfinite(x) & (x == np.round(x)) & (x >= 0)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return -0.1 - jax.nn.softplus(jnp.asarray(u))

    def reference_params(self) -> Array:
        return jnp.full(self.param_shape, -1.0)
