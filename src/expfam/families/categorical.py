r"""Categorical(K): one of `K` values, category 0 the reference.

$$
s(x) = e_x \in \mathbb{R}^{K-1},\ e_0 = 0,\quad \log h(x) = 0,
\quad \psi(\theta) = \log\Big(1 + \sum_{j\ge1} e^{\theta_j}\Big),
\quad \eta_j = p(x=j),\quad \theta_j = \log\eta_j - \log\big(1 - \textstyle\sum\eta\big).
$$
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np

from expfam.errors import ConfigurationError
from expfam.family import Array, ExponentialFamily, register_family


def full_logits(params: Array) -> Array:
    """Prepend the reference category's fixed 0: `(..., K−1) → (..., K)`."""
    zeros = jnp.zeros((*params.shape[:-1], 1), dtype=params.dtype)
    return jnp.concatenate([zeros, params], axis=-1)


@final
@register_family
@dataclass(frozen=True)
class Categorical(ExponentialFamily):
    """A single categorical value in `{0, …, size−1}` (`size` = number of categories)."""

    name: ClassVar[str] = "categorical"

    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or self.size < 2:
            raise ConfigurationError(
                f"Categorical: size (the number of categories) must be an integer ≥ 2, got {self.size!r}; "
                "a single category carries no information",
                offending=self.size,
            )

    @property
    def support_text(self) -> str:  # type: ignore[override]
        return f"an integer category between 0 and {self.size - 1}"

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.size - 1,)

    @property
    def data_shape(self) -> tuple[int, ...]:
        return ()

    def sufficient_statistic(self, x: Array) -> Array:
        return jax.nn.one_hot(x, self.size)[..., 1:]

    def log_base_measure(self, x: Array) -> Array:
        return jnp.zeros(())

    def log_partition(self, params: Array) -> Array:
        return jax.nn.logsumexp(full_logits(params), axis=-1)

    def natural_from_means(self, means: Array) -> Array:
        return jnp.log(means) - jnp.log1p(-jnp.sum(means, axis=-1, keepdims=True))

    def expected_log_base_measure(self, params: Array) -> Array:
        return jnp.zeros(())

    def probabilities(self, params: Array) -> Array:
        """All `K` probabilities `softmax(0, θ)`."""
        return jax.nn.softmax(full_logits(params), axis=-1)

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        return jax.random.categorical(key, full_logits(params), shape=shape)

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return np.isfinite(x) & (x == np.round(x)) & (x >= 0) & (x <= self.size - 1)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return jnp.asarray(u)

    def reference_params(self) -> Array:
        return jnp.zeros(self.param_shape)
