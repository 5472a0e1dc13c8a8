"""Run every applicable identity check on one family, or on one latent mixture."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture, MixtureParams
from expfam.testing import (
    family_checks,
    geometry_checks,
    mixture_checks,
    sampling_checks,
)
from expfam.testing._compiled import evaluate, sample_statistics
from expfam.testing.scipy_reference import check_against_scipy


def check_family(
    family: ExponentialFamily,
    params: Array,
    *,
    key: Array,
    other: Array | None = None,
    n_samples: int = family_checks.DEFAULT_SAMPLES,
) -> dict[str, bool]:
    """Run every identity check on `family` at `params`.

    Args:
        family: the family under test.
        params: natural parameters of `family.param_shape`.
        key: randomness for the second point, the line direction and the samples.
        other: a second valid natural-parameter point (default: one drawn through
            `natural_from_unconstrained`).
        n_samples: draws for the Monte Carlo checks.

    Returns:
        `{check name: whether it applied}`; a failing identity raises `AssertionError`.

    Examples:
        >>> from expfam.families import Poisson
        >>> jax.config.update("jax_enable_x64", True)  # the kit compares in float64
        >>> report = check_family(Poisson(2), jax.numpy.array([0.3, -1.0]), key=jax.random.key(0))
        >>> all(isinstance(applied, bool) for applied in report.values())
        True
    """
    sample_key, kl_key, fit_key = jax.random.split(key, 3)
    generator = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    if other is None:
        other = evaluate(family, "natural_from_unconstrained", generator.normal(size=family.param_shape))
    direction = generator.normal(size=family.param_shape)
    samples, _ = sample_statistics(family, sample_key, params, n_samples)
    return {
        "mean_map": family_checks.check_mean_map(family, params, key=sample_key, n_samples=n_samples),
        "normalisation": family_checks.check_normalisation(family, params),
        "entropy": family_checks.check_entropy(family, params, key=sample_key, n_samples=n_samples),
        "convexity": geometry_checks.check_convexity(family, params, direction),
        "conjugate_duality": geometry_checks.check_conjugate_duality(family, params, other),
        "round_trips": geometry_checks.check_round_trips(family, params, other),
        "fisher_information": geometry_checks.check_fisher_information(family, params),
        "kl": family_checks.check_kl(family, params, other, key=kl_key, n_samples=n_samples),
        "scipy": check_against_scipy(family, params, samples[:8]),
        "sampling": sampling_checks.check_sampling(family, params, key=sample_key, n_samples=n_samples),
        "fit": sampling_checks.check_fit_recovers(family, params, key=fit_key, n_samples=n_samples),
        "initialize": family_checks.check_initialize(family, jnp.asarray(samples[:64]), key=fit_key),
    }


def check_mixture(
    mixture: LatentMixture,
    params: MixtureParams,
    *,
    key: Array,
    other: MixtureParams,
    n_samples: int = family_checks.DEFAULT_SAMPLES,
) -> dict[str, bool]:
    """Run every latent-mixture check (docs/mixture.md) at `params`; `other` is a second point for KL.

    Returns:
        `{check name: whether it applied}`; a failing identity raises `AssertionError`.
    """
    return {
        "log_partition": mixture_checks.check_mixture_log_partition(mixture, params),
        "means": mixture_checks.check_mixture_means(mixture, params),
        "normalisation": mixture_checks.check_mixture_normalisation(mixture, params),
        "conditional": mixture_checks.check_mixture_conditional(mixture, params),
        "kl": mixture_checks.check_mixture_kl(mixture, params, other),
        "sampling": mixture_checks.check_mixture_sampling(mixture, params, key=key, n_samples=n_samples),
    }


__all__ = ["check_family", "check_mixture"]
