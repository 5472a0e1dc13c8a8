r"""Poisson(n): independent unbounded counts.

$$
s(x) = x,\quad \log h(x) = -\sum_i \log x_i!,
\quad \psi(\theta) = \sum_i e^{\theta_i},\quad \eta = e^\theta,\quad \theta = \log\eta.
$$
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from expfam.family import Array, ExponentialFamily, register_family, require_positive


@final
@register_family
@dataclass(frozen=True)
class Poisson(ExponentialFamily):
    """`size` independent Poisson counts.

    `entropy_terms` bounds the series `E[log x!] = Σ_j p(j) log j!` used by
    the entropy; it is exact to float precision for rates up to about
    `entropy_terms − 10·√entropy_terms`.
    """

    name: ClassVar[str] = "poisson"
    support_text: ClassVar[str] = "a non-negative integer count"

    size: int
    entropy_terms: int = 512

    def __post_init__(self) -> None:
        require_positive("Poisson", size=self.size, entropy_terms=self.entropy_terms)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.size,)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.size,)

    def sufficient_statistic(self, x: Array) -> Array:
        return jnp.asarray(x, dtype=jnp.result_type(float))

    def log_base_measure(self, x: Array) -> Array:
        return -jnp.sum(gammaln(jnp.asarray(x, jnp.result_type(float)) + 1.0))

    def log_partition(self, params: Array) -> Array:
        return jnp.sum(jnp.exp(params))

    def natural_from_means(self, means: Array) -> Array:
        return jnp.log(means)

    def expected_log_base_measure(self, params: Array) -> Array:
        counts = jnp.arange(self.entropy_terms, dtype=jnp.result_type(float))
        log_factorials = gammaln(counts + 1.0)
        log_pmf = counts * params[:, None] - log_factorials - jnp.exp(params)[:, None]
        return -jnp.sum(jnp.exp(log_pmf) * log_factorials)

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        rates = jnp.broadcast_to(jnp.exp(params), shape + self.param_shape)
        return jax.random.poisson(key, rates, shape + self.param_shape).astype(jnp.result_type(float))

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return np.isfinite(x) & (x == np.round(x)) & (x >= 0)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return jnp.asarray(u)

    def reference_params(self) -> Array:
        return jnp.zeros(self.param_shape)
