r"""Exact enumeration of small discrete supports.

For a discrete family whose support is a set of integers per coordinate, the
distribution can be tabulated by brute force: the unnormalised log weight of
each point is

$$
\log w(x) = \theta\cdot s(x) + \log h(x),\qquad
\psi_{\text{brute}}(\theta) = \log\sum_x w(x),
$$

computed from the sufficient statistic and the base measure alone, never from
the family's [`log_partition`][expfam.family.ExponentialFamily.log_partition]. Supports
that are unbounded above (Poisson counts) are truncated at the smallest
`top` in 8, 12, 18, … whose edge (points with a coordinate equal to
`top`) carries a relative mass below [`EDGE_MASS`][expfam.testing.enumeration.EDGE_MASS] (1e-12).

The support is found by probing [`in_support`][expfam.family.ExponentialFamily.in_support]
with whole and half integers, so a plugin family is enumerated without any
registration.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy.special import logsumexp

from expfam.family import Array, ExponentialFamily
from expfam.testing._compiled import over_points

DEFAULT_MAX_POINTS: int = 250_000
"""Largest support (number of points) the kit tabulates."""

PROBE_LIMIT: int = 1024
"""Integers up to this value are probed; a support containing it counts as unbounded."""

EDGE_MASS: float = 1e-12
"""Largest relative probability mass at the truncation edge of an unbounded support."""


def _accepts(family: ExponentialFamily, values: np.ndarray) -> np.ndarray:
    """Whether an observation with every coordinate equal to each value is in the support."""
    shape = family.data_shape
    probe = np.broadcast_to(values.reshape((-1,) + (1,) * len(shape)), values.shape + shape)
    with np.errstate(invalid="ignore"):
        mask = np.asarray(family.in_support(probe), dtype=bool)
    return np.asarray(mask.reshape(len(values), -1).all(axis=1))


def integer_support(family: ExponentialFamily) -> tuple[np.ndarray, bool] | None:
    """The integers each coordinate may take, and whether that set is unbounded above.

    Returns:
        `(values, unbounded)`, or `None` when the support is not a set of
        integers bounded below (a continuous family accepts half integers).
    """
    integers = np.arange(-4, PROBE_LIMIT + 1, dtype=float)
    inside = _accepts(family, integers)
    if _accepts(family, integers + 0.5).any() or not inside.any() or inside[0]:
        return None
    return integers[inside].astype(int), bool(inside[-1])


def data_dtype(family: ExponentialFamily) -> np.dtype:
    """The dtype of the family's samples (integers for categories, floats for counts)."""
    return _sample_dtype(family, np.dtype(jnp.result_type(float)))


@functools.cache
def _sample_dtype(family: ExponentialFamily, default_float: np.dtype) -> np.dtype:
    shape = jax.eval_shape(lambda key: family.sample(key, family.reference_params()), jax.random.key(0))
    return np.dtype(shape.dtype)


def _grid(family: ExponentialFamily, values: np.ndarray) -> np.ndarray:
    """Every observation whose coordinates all lie in `values`: shape `(m,) + data_shape`."""
    axes = np.meshgrid(*([values] * family.data_dim), indexing="ij")
    points = np.stack(axes, axis=-1).reshape((-1, *family.data_shape))
    return points.astype(data_dtype(family))


def log_weights(family: ExponentialFamily, params: Array, points: Array) -> Array:
    r"""Unnormalised `log w(x) = θ·s(x) + log h(x)` at each point (shape `(m,)`)."""
    statistics = jax.vmap(family.sufficient_statistic)(points)
    axes = tuple(range(1, statistics.ndim))
    return jnp.sum(statistics * params, axis=axes) + jax.vmap(family.log_base_measure)(points)


@jax.jit
def _weights_and_statistics(family: ExponentialFamily, params: Array, points: Array) -> tuple[Array, Array]:
    return log_weights(family, params, points), jax.vmap(family.sufficient_statistic)(points)


def tabulate(family: ExponentialFamily, params: Array, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`log w(x)` and `s(x)` at every point, as NumPy (compiled once per family and shape)."""
    return over_points(_weights_and_statistics, family, params, points=points)


def enumerate_support(
    family: ExponentialFamily, max_points: int = DEFAULT_MAX_POINTS, *, params: ArrayLike | None = None
) -> np.ndarray | None:
    """All points of a small discrete support, or `None` when it cannot be enumerated.

    Args:
        family: any family; continuous ones return `None`.
        max_points: largest number of points to return.
        params: natural parameters (one point, or a stack with leading axes),
            needed to truncate a support that is unbounded above; the
            truncation holds for every point of the stack.

    Returns:
        An array of shape `(m,) + data_shape` of the family's sample dtype.
    """
    support = integer_support(family)
    if support is None:
        return None
    values, unbounded = support
    if not unbounded:
        return _grid(family, values) if len(values) ** family.data_dim <= max_points else None
    if params is None:
        return None
    stack = np.reshape(np.asarray(params), (-1, *family.param_shape))
    top = 8
    while top <= PROBE_LIMIT and int(np.sum(values <= top)) ** family.data_dim <= max_points:
        points = _grid(family, values[values <= top])
        edge = np.any(np.reshape(points, (points.shape[0], -1)) == top, axis=1)
        weights = np.stack([tabulate(family, theta, points)[0] for theta in stack])
        excess = logsumexp(weights[:, edge], axis=1) - logsumexp(weights, axis=1)
        if not np.isfinite(excess).all() or (excess < math.log(EDGE_MASS)).all():
            return points
        top = math.ceil(1.5 * top)
    return None


@dataclass(frozen=True)
class EnumeratedDistribution:
    r"""A tabulated distribution: points, their statistics, and brute-force log probabilities.

    `log_probabilities = log w(x) − logsumexp_x log w(x)`; the normaliser is
    `log_normaliser` (the brute-force `ψ(θ)`).
    """

    points: np.ndarray
    statistics: np.ndarray
    log_normaliser: float
    log_probabilities: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        """`p(x)` at each point."""
        return np.exp(self.log_probabilities)

    def expectation(self, values: np.ndarray) -> np.ndarray:
        """`Σ_x p(x)·values[x]` over the leading axis of `values`."""
        return np.tensordot(self.probabilities, values, axes=1)


def enumerate_distribution(
    family: ExponentialFamily,
    params: Array,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    points: np.ndarray | None = None,
) -> EnumeratedDistribution | None:
    """Tabulate `p_θ` over the enumerated support, or `None` when it cannot be enumerated.

    Args:
        family: the family.
        params: natural parameters of [`param_shape`][expfam.family.ExponentialFamily.param_shape].
        max_points: largest support to tabulate.
        points: a support to reuse (e.g. one truncated for two parameter points).
    """
    if points is None:
        points = enumerate_support(family, max_points, params=params)
    if points is None:
        return None
    weights, statistics = tabulate(family, params, points)
    normaliser = float(logsumexp(weights))
    return EnumeratedDistribution(points, statistics, normaliser, weights - normaliser)
