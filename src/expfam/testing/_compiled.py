"""Compiled evaluation of family methods for the test kit.

Families and mixtures are static pytrees, so a jitted function that takes
one as an argument compiles once per family (and shape) and is reused across
hypothesis examples. Results come back as NumPy arrays, so that the
assertions around them compile nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


@functools.cache
def _compiled_method(cls: type, method: str) -> Callable[..., Any]:
    return jax.jit(getattr(cls, method))


def evaluate(owner: Any, method: str, *args: Any) -> Any:
    """`owner.<method>(*args)` as NumPy, compiled once per class, method and shapes.

    Examples:
        >>> evaluate(Poisson(2), "means", params)  # doctest: +SKIP
    """
    return jax.tree.map(np.asarray, _compiled_method(owner.__class__, method)(owner, *args))


@functools.partial(jax.jit, static_argnames="n_samples")
def _sample_statistics(family: Any, key: jax.Array, params: jax.Array, n_samples: int) -> tuple[jax.Array, jax.Array]:
    samples = family.sample(key, params, (n_samples,))
    statistics = jax.vmap(family.sufficient_statistic)(samples)
    return samples, statistics.reshape(n_samples, family.dim)


def sample_statistics(family: Any, key: jax.Array, params: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """`n_samples` draws and their flattened sufficient statistics `(n, dim)`, as NumPy."""
    samples, statistics = _sample_statistics(family, key, params, n_samples)
    return np.asarray(samples), np.asarray(statistics)


CHUNK: int = 2048
"""Points per compiled call in `over_points`; one shape, so one compilation."""


def over_points(function: Callable[..., Any], *arguments: Any, points: np.ndarray) -> Any:
    """`function(*arguments, points)` evaluated in fixed-size chunks, as NumPy.

    `function` maps a batch of points to arrays (or a pytree of arrays) with
    the batch as leading axis. Every call sees a batch of `CHUNK` points
    (the last chunk is padded by repeating its last point), so a support of any
    size compiles `function` once.
    """
    pieces = []
    for start in range(0, len(points), CHUNK):
        block = points[start : start + CHUNK]
        kept = len(block)
        if kept < CHUNK:
            block = np.concatenate([block, np.repeat(block[-1:], CHUNK - kept, axis=0)])
        pieces.append(jax.tree.map(lambda a, kept=kept: np.asarray(a)[:kept], function(*arguments, block)))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *pieces)


@jax.jit
def _log_densities(family: Any, params: jax.Array, points: jax.Array) -> jax.Array:
    return jax.vmap(lambda x: family.log_density(params, x))(points)


def log_densities(family: Any, params: Any, points: np.ndarray) -> np.ndarray:
    """`log p_θ(x)` at each of a batch of observations, as NumPy (compiled in chunks)."""
    return over_points(_log_densities, family, params, points=np.asarray(points))
