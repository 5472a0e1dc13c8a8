r"""DiagonalNormal(n): independent Gaussian coordinates.

Natural parameters have shape `(n, 2)`: column 0 is `θ₁ = μ/σ²` (the
location column, the one interaction blocks couple to), column 1 is
`θ₂ = −1/(2σ²) < 0`.

$$
s(x) = (x, x^2),\quad \log h(x) = -\tfrac{n}{2}\log 2\pi,
\quad \psi(\theta) = \sum_i -\frac{\theta_{1i}^2}{4\theta_{2i}} - \tfrac12\log(-2\theta_{2i}),
\quad \eta = (\mu, \mu^2 + \sigma^2).
$$
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np

from expfam.family import Array, ExponentialFamily, register_family, require_positive


@final
@register_family
@dataclass(frozen=True)
class DiagonalNormal(ExponentialFamily):
    """`size` independent normal coordinates; blocks offset the location column `θ₁`."""

    name: ClassVar[str] = "normal"
    coupling_index: ClassVar[int | None] = 0
    support_text: ClassVar[str] = "a finite real number"

    size: int

    def __post_init__(self) -> None:
        require_positive("DiagonalNormal", size=self.size)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.size, 2)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.size,)

    def sufficient_statistic(self, x: Array) -> Array:
        x = jnp.asarray(x, dtype=jnp.result_type(float))
        return jnp.stack([x, x * x], axis=-1)

    def log_base_measure(self, x: Array) -> Array:
        return jnp.asarray(-0.5 * self.size * math.log(2.0 * math.pi))

    def log_partition(self, params: Array) -> Array:
        theta1, theta2 = params[..., 0], params[..., 1]
        return jnp.sum(-(theta1**2) / (4.0 * theta2) - 0.5 * jnp.log(-2.0 * theta2))

    def natural_from_means(self, means: Array) -> Array:
        mean, second = means[..., 0], means[..., 1]
        variance = second - mean**2
        return jnp.stack([mean / variance, -0.5 / variance], axis=-1)

    def expected_log_base_measure(self, params: Array) -> Array:
        return self.log_base_measure(jnp.zeros(self.data_shape))

    def location_scale(self, params: Array) -> tuple[Array, Array]:
        """`(μ, σ)` from natural parameters: `σ² = −1/(2θ₂)`, `μ = θ₁σ²`."""
        variance = -0.5 / params[..., 1]
        return params[..., 0] * variance, jnp.sqrt(variance)

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        mean, scale = self.location_scale(params)
        return mean + scale * jax.random.normal(key, shape + self.data_shape)

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return np.isfinite(x)

    def natural_from_unconstrained(self, u: Array) -> Array:
        u = jnp.asarray(u)
        return jnp.stack([u[..., 0], -0.05 - jax.nn.softplus(u[..., 1])], axis=-1)

    def reference_params(self) -> Array:
        return jnp.stack([jnp.zeros(self.size), jnp.full(self.size, -0.5)], axis=-1)
