r"""Hypothesis strategies for families, natural parameters and mixtures.

Parameters are drawn as unconstrained floats in `[−scale, scale]` and
mapped through [`natural_from_unconstrained`][expfam.family.ExponentialFamily.natural_from_unconstrained],
so every draw is an interior point with the family's own margin from the
boundary. Importing this module needs `hypothesis` (the `test` extra).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from expfam.errors import ConfigurationError
from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture, MixtureParams
from expfam.plugins import Registry, get_registry
from expfam.testing.enumeration import data_dtype, integer_support


def unconstrained(shape: tuple[int, ...], *, scale: float) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of `shape` with entries in `[−scale, scale]`."""
    elements = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=64)
    return arrays(np.float64, shape, elements=elements)


def natural_params(family: ExponentialFamily, *, scale: float = 3.0) -> st.SearchStrategy[Array]:
    """Interior natural parameters of `family.param_shape`.

    Examples:
        >>> from hypothesis import given, settings
        >>> from expfam.families import Poisson
        >>> @settings(max_examples=5)
        ... @given(natural_params(Poisson(2)))
        ... def test_finite_rate(params):
        ...     assert bool(jnp.all(jnp.isfinite(Poisson(2).means(params))))
        >>> test_finite_rate()
    """
    return unconstrained(family.param_shape, scale=scale).map(
        lambda u: family.natural_from_unconstrained(jnp.asarray(u))
    )


def observations(
    family: ExponentialFamily, *, max_count: int = 20, scale: float = 10.0
) -> st.SearchStrategy[np.ndarray]:
    """Single observations of `family.data_shape` inside its support.

    Discrete supports (found by [`integer_support`][expfam.testing.enumeration.integer_support])
    give integers up to `max_count`; continuous ones give the floats in
    `[−scale, scale]` that `in_support` accepts.
    """
    support = integer_support(family)
    if support is None:
        floats = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=64)
        elements = floats.filter(lambda v: bool(np.all(family.in_support(np.full(family.data_shape, v)))))
    else:
        values = support[0]
        elements = st.sampled_from([int(v) for v in values[values <= max_count]])
    return arrays(data_dtype(family), family.data_shape, elements=elements)


def smallest_size(cls: type[ExponentialFamily], *, max_size: int = 3) -> int:
    """The smallest `size` in `1..max_size` that `cls(size, **cls.example_options)` accepts."""
    for size in range(1, max_size + 1):
        try:
            cls(size, **cls.example_options)  # type: ignore[call-arg]
        except ConfigurationError:
            continue
        return size
    raise ValueError(f"{cls.__name__} accepts no size in 1..{max_size}; raise max_size")


def sized_family(cls: type[ExponentialFamily], *, max_size: int = 3) -> st.SearchStrategy[ExponentialFamily]:
    """Instances `cls(size, **cls.example_options)` with a small valid `size`."""
    low = smallest_size(cls, max_size=max_size)
    return st.integers(low, max_size).map(lambda size: cls(size, **cls.example_options))  # type: ignore[call-arg]


def families(registry: Registry | None = None, *, max_size: int = 3) -> st.SearchStrategy[ExponentialFamily]:
    """A registered family class, built with a small size and its `example_options`."""
    table = get_registry() if registry is None else registry
    names = table.names("families")
    return st.sampled_from(names).flatmap(lambda name: sized_family(table.family(name), max_size=max_size))


def mixtures(
    latent: st.SearchStrategy[ExponentialFamily] | None = None, *, max_clusters: int = 4
) -> st.SearchStrategy[LatentMixture]:
    """`LatentMixture(latent, K)` with `2 ≤ K ≤ max_clusters` (latent drawn from [`families`][expfam.testing.strategies.families] by default)."""
    latents = families() if latent is None else latent
    return st.tuples(latents, st.integers(2, max_clusters)).map(lambda pair: LatentMixture(*pair))


def _assemble(clusters: list[Array], cluster_biases: np.ndarray) -> MixtureParams:
    stacked = np.stack([np.asarray(theta) for theta in clusters])
    return {
        "b_y": stacked[0],
        "W_yk": np.moveaxis(stacked[1:] - stacked[0], 0, -1),
        "b_k": cluster_biases,
    }


def mixture_params(mixture: LatentMixture, *, scale: float = 2.0) -> st.SearchStrategy[MixtureParams]:
    r"""Parameters `{"b_y", "W_yk", "b_k"}` whose every cluster `θ_k = b_y + W_yk e_k` is interior.

    Each `θ_k` is drawn with [`natural_params`][expfam.testing.strategies.natural_params]; then `b_y = θ_0` and
    `W_yk e_k = θ_k − θ_0`, so a constrained latent (normal precision) stays valid.
    """
    count = mixture.n_clusters
    clusters = st.lists(natural_params(mixture.latent, scale=scale), min_size=count, max_size=count)
    return st.tuples(clusters, unconstrained((count - 1,), scale=scale)).map(lambda pair: _assemble(*pair))
