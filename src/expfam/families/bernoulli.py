r"""Bernoulli(n): independent binary coordinates.

$$
s(x) = x,\quad \log h(x) = 0,\quad \psi(\theta) = \sum_i \operatorname{softplus}(\theta_i),
\quad \eta = \sigma(\theta),\quad \theta = \operatorname{logit}(\eta).
$$
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np

from expfam.families.softplus import sigmoid, softplus
from expfam.family import Array, ExponentialFamily, register_family, require_positive


@final
@register_family
@dataclass(frozen=True)
class Bernoulli(ExponentialFamily):
    """`size` independent Bernoulli coordinates with data in `{0, 1}^size`."""

    name: ClassVar[str] = "bernoulli"
    support_text: ClassVar[str] = "0 or 1"

    size: int

    def __post_init__(self) -> None:
        require_positive("Bernoulli", size=self.size)

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
        return jnp.sum(softplus(params))

    def natural_from_means(self, means: Array) -> Array:
        return jnp.log(means) - jnp.log1p(-means)

    def expected_log_base_measure(self, params: Array) -> Array:
        return jnp.zeros(())

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        draws = jax.random.bernoulli(key, sigmoid(params), shape + self.param_shape)
        return draws.astype(jnp.result_type(float))

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return (x == 0) | (x == 1)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return jnp.asarray(u)

    def reference_params(self) -> Array:
        return jnp.zeros(self.param_shape)
