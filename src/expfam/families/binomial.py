r"""Binomial(n, N): independent counts out of `n_trials` trials.

$$
s(x) = x,\quad \log h(x) = \sum_i \log\binom{N}{x_i},
\quad \psi(\theta) = N\sum_i \operatorname{softplus}(\theta_i),
\quad \eta = N\sigma(\theta),\quad \theta = \operatorname{logit}(\eta/N).
$$
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from expfam.families.softplus import sigmoid, softplus
from expfam.family import Array, ExponentialFamily, register_family, require_positive


def log_binomial_coefficient(n_trials: int, x: Array) -> Array:
    r"""`log C(N, x) = log Γ(N+1) − log Γ(x+1) − log Γ(N−x+1)`, elementwise."""
    return gammaln(n_trials + 1.0) - gammaln(x + 1.0) - gammaln(n_trials - x + 1.0)


@final
@register_family
@dataclass(frozen=True)
class Binomial(ExponentialFamily):
    """`size` independent Binomial(`n_trials`) counts with data in `{0..n_trials}^size`."""

    name: ClassVar[str] = "binomial"
    example_options: ClassVar[dict[str, int]] = {"n_trials": 3}

    size: int
    n_trials: int = 16

    def __post_init__(self) -> None:
        require_positive("Binomial", size=self.size, n_trials=self.n_trials)

    @property
    def support_text(self) -> str:  # type: ignore[override]
        return f"an integer count between 0 and n_trials={self.n_trials}"

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.size,)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.size,)

    def sufficient_statistic(self, x: Array) -> Array:
        return jnp.asarray(x, dtype=jnp.result_type(float))

    def log_base_measure(self, x: Array) -> Array:
        r"""`Σ_i log C(N, x_i)`, read from the table of the `N + 1` values (`x` in the support).

        The table holds [`log_binomial_coefficient`][expfam.families.binomial.log_binomial_coefficient] at
        `0..N`, so the value is the same as the formula's; a lookup avoids three `gammaln` per coordinate.
        """
        table = log_binomial_coefficient(self.n_trials, jnp.arange(self.n_trials + 1, dtype=jnp.result_type(float)))
        index = jnp.clip(jnp.round(jnp.asarray(x)), 0, self.n_trials).astype(jnp.int32)
        return jnp.sum(table[index])

    def log_partition(self, params: Array) -> Array:
        return self.n_trials * jnp.sum(softplus(params))

    def natural_from_means(self, means: Array) -> Array:
        return jnp.log(means) - jnp.log(self.n_trials - means)

    def expected_log_base_measure(self, params: Array) -> Array:
        counts = jnp.arange(self.n_trials + 1, dtype=jnp.result_type(float))
        log_coefficients = log_binomial_coefficient(self.n_trials, counts)
        log_pmf = log_coefficients + counts * params[:, None] - self.n_trials * softplus(params)[:, None]
        return jnp.sum(jnp.exp(log_pmf) * log_coefficients)

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        probs = jnp.broadcast_to(sigmoid(params), shape + self.param_shape)
        draws = jax.random.binomial(key, self.n_trials, probs, shape + self.param_shape)
        return jnp.round(draws).astype(jnp.result_type(float))

    def in_support(self, x: np.ndarray) -> np.ndarray:
        finite = np.isfinite(x)
        return finite & (x == np.round(x)) & (x >= 0) & (x <= self.n_trials)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return jnp.asarray(u)

    def reference_params(self) -> Array:
        return jnp.zeros(self.param_shape)
