r"""Inputs of the block and model identity checks: enumerated latent states, random parameters and data.

[`enumerate_states`][expfam.testing.model_inputs.enumerate_states] lists every latent state `z = (y, k)`
of a small model; [`random_model_params`][expfam.testing.model_inputs.random_model_params] and
[`random_observations`][expfam.testing.model_inputs.random_observations] draw the parameters and data the
checks of [`expfam.testing.block_checks`][expfam.testing.block_checks] and
[`expfam.testing.model_checks`][expfam.testing.model_checks] compare at. Both take their roundoff tolerance
from the family checks' [`roundoff`][expfam.testing.family_checks.roundoff].
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from expfam.block import InteractionBlock, LatentStatistics
from expfam.families.bernoulli import Bernoulli
from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.model import Harmonium, Params
from expfam.testing.enumeration import data_dtype, enumerate_support, integer_support

DEFAULT_MAX_STATES: int = 4096
"""Largest number of latent states `(y, k)` the kit enumerates."""

SLOTS: tuple[str, ...] = ("b_y", "W_yk", "b_k")
_data_dtype = cache(data_dtype)


def block_name(block: InteractionBlock) -> str:
    sizes = f"D={block.observable_size}, n={block.latent_size}, K={block.n_clusters}"
    return f"block {block.name!r} ({type(block).__name__}, {sizes})"


# ------------------------------------------------------------------ enumeration
def block_mixture(block: InteractionBlock, latent: ExponentialFamily | None = None) -> LatentMixture:
    """The latent mixture a block couples to (Bernoulli base latent unless `latent` is given)."""
    return LatentMixture(latent or Bernoulli(block.latent_size), block.n_clusters)


def enumerate_states(model: Harmonium | LatentMixture, max_states: int = DEFAULT_MAX_STATES) -> tuple[Array, Array]:
    """Every latent state `(y, k)`: `y` of shape `(m·K, n)` and `k` of shape `(m·K,)`.

    Args:
        model: a harmonium, or a latent mixture.
        max_states: refuse supports with more states than this.

    Raises:
        ValueError: the base latent cannot be enumerated or has too many states.
    """
    mixture = model.mixture if isinstance(model, Harmonium) else model
    y, k = _enumerate_states(mixture, max_states)
    return jnp.asarray(y), jnp.asarray(k)


@cache
def _enumerate_states(mixture: LatentMixture, max_states: int) -> tuple[np.ndarray, np.ndarray]:
    points = enumerate_support(mixture.latent, max(1, max_states // mixture.n_clusters))
    if points is None:
        raise ValueError(
            f"cannot enumerate the latent states of {mixture.latent.describe()} with K={mixture.n_clusters} "
            f"in at most {max_states} states; use a smaller n_latent or a discrete latent"
        )
    points = np.asarray(points)
    y = np.tile(points, (mixture.n_clusters,) + (1,) * (points.ndim - 1))
    k = np.repeat(np.arange(mixture.n_clusters), points.shape[0])
    return y, k


def latent_statistics(mixture: LatentMixture, y: Array, k: Array) -> LatentStatistics:
    """`s_Z(y_s, k_s)` per state as a named pytree with a leading axis."""
    return jax.vmap(mixture.sufficient_statistic)(y, k)


def generator(key: Array) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key: random test inputs cost no compilation."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def random_latent_statistics(key: Array, mixture: LatentMixture, n_draws: int) -> LatentStatistics:
    """Arbitrary latent statistics (standard normal entries), not necessarily `s_Z` of any state."""
    rng = generator(key)
    return {name: jnp.asarray(rng.normal(size=(n_draws, *shape))) for name, shape in mixture.param_shapes().items()}


def random_model_params(model: Harmonium, key: Array, *, scale: float = 1.0) -> Params:
    """Parameters with every entry `scale·N(0, 1)` (`a` mapped into the observable's domain).

    Unlike [`Harmonium.init`][expfam.model.Harmonium.init], blocks and `ρ_y` are far from zero, so every
    term of the identities is exercised.
    """
    rng = generator(key)
    noisy = jax.tree.map(lambda leaf: jnp.asarray(scale * rng.normal(size=leaf.shape)), _param_template(model))
    likelihood = noisy["likelihood"]
    return {**noisy, "likelihood": {**likelihood, "a": model.observable.natural_from_unconstrained(likelihood["a"])}}


@cache
def _param_template(model: Harmonium) -> Params:
    return jax.eval_shape(model.init, jax.random.key(0))


def random_observations(family: ExponentialFamily, seed: int, batch: int) -> Array:
    """`batch` observations inside the family's support (no sampling code involved).

    Discrete supports: uniform over the support's values up to 8; continuous
    ones: standard normal entries.
    """
    rng = np.random.default_rng(seed)
    support = integer_support(family)
    shape = (batch, *family.data_shape)
    if support is None:
        return jnp.asarray(rng.normal(size=shape))
    values = support[0][support[0] <= 8]
    return jnp.asarray(rng.choice(values, size=shape), dtype=_data_dtype(family))
