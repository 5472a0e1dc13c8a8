r"""Log densities and entropies from `scipy.stats`, as an outside reference.

Each reference converts natural parameters with the textbook formula (`p = σ(θ)`, `λ = e^θ`, `σ² = −1/(2θ₂)`,
…), independently of the family's own code.
[`SCIPY_REFERENCES`][expfam.testing.scipy_reference.SCIPY_REFERENCES] maps a family's registry name to its
builder; a plugin may add its own entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from jax.typing import ArrayLike
from scipy import special, stats

from expfam.families.binomial import Binomial
from expfam.family import ExponentialFamily
from expfam.testing._assertions import assert_close, require_x64
from expfam.testing._compiled import evaluate, log_densities


class ScipyReference(NamedTuple):
    """A reference distribution: the log density of one observation, and the entropy."""

    log_density: Callable[[np.ndarray], float]
    entropy: float


def _product(frozen: stats.rv_discrete | stats.rv_continuous, *, discrete: bool) -> ScipyReference:
    """Independent coordinates: log densities and entropies add."""
    log_pdf = frozen.logpmf if discrete else frozen.logpdf
    return ScipyReference(lambda x: float(np.sum(log_pdf(x))), float(np.sum(frozen.entropy())))


def _bernoulli(family: ExponentialFamily, params: np.ndarray) -> ScipyReference:
    return _product(stats.bernoulli(special.expit(params)), discrete=True)


def _binomial(family: ExponentialFamily, params: np.ndarray) -> ScipyReference:
    if not isinstance(family, Binomial):
        raise TypeError(f"the binomial scipy reference needs a Binomial family, got {family.describe()}")
    return _product(stats.binom(family.n_trials, special.expit(params)), discrete=True)


def _poisson(family: ExponentialFamily, params: np.ndarray) -> ScipyReference:
    return _product(stats.poisson(np.exp(params)), discrete=True)


def _normal(family: ExponentialFamily, params: np.ndarray) -> ScipyReference:
    variance = -0.5 / params[..., 1]
    return _product(stats.norm(params[..., 0] * variance, np.sqrt(variance)), discrete=False)


def _categorical(family: ExponentialFamily, params: np.ndarray) -> ScipyReference:
    probabilities = special.softmax(np.concatenate([[0.0], params]))
    frozen = stats.multinomial(1, probabilities)
    eye = np.eye(len(probabilities))
    return ScipyReference(lambda x: float(frozen.logpmf(eye[int(x)])), float(frozen.entropy()))


SCIPY_REFERENCES: dict[str, Callable[[ExponentialFamily, np.ndarray], ScipyReference]] = {
    "bernoulli": _bernoulli,
    "binomial": _binomial,
    "poisson": _poisson,
    "normal": _normal,
    "categorical": _categorical,
}
"""Registry name → builder of the scipy reference at given natural parameters."""


def check_against_scipy(family: ExponentialFamily, params: ArrayLike, x: ArrayLike) -> bool:
    r"""`log p_θ(x)` and `H(θ)` agree with `scipy.stats` (`rtol = 1e-8`, `atol = 1e-9`).

    Args:
        family: a family whose `name` is a key of [`SCIPY_REFERENCES`][expfam.testing.scipy_reference.SCIPY_REFERENCES].
        params: natural parameters.
        x: one observation of `data_shape`, or a batch with one leading axis.

    Returns:
        `False` (nothing checked) when scipy has no reference for the family.
    """
    require_x64()
    builder = SCIPY_REFERENCES.get(family.name)
    if builder is None:
        return False
    reference = builder(family, np.asarray(params, dtype=float))
    batch = np.asarray(x)
    if batch.shape == family.data_shape:
        batch = batch[None]
    actual = log_densities(family, params, batch)
    expected = np.array([reference.log_density(row) for row in batch])
    assert_close(f"{family.describe()}: log p(x) vs scipy.stats", actual, expected)
    assert_close(f"{family.describe()}: entropy vs scipy.stats", evaluate(family, "entropy", params), reference.entropy)
    return True
