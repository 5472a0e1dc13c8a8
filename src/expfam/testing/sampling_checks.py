r"""Monte Carlo checks of a family's sampler and maximum-likelihood fit.

The sample mean of `s(x)` over `n` draws has covariance `∇²ψ(θ)/n`, and
the maximum-likelihood estimate `θ̂` is asymptotically normal with covariance
`(∇²ψ(θ))⁻¹/n`. Both checks accept every coordinate with `|z| < 5`.
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

from expfam.family import Array, ExponentialFamily
from expfam.testing._assertions import assert_z_scores, require_x64
from expfam.testing._compiled import evaluate, sample_statistics
from expfam.testing.family_checks import DEFAULT_SAMPLES


def _check_in_support(family: ExponentialFamily, samples: ArrayLike) -> None:
    inside = np.asarray(family.in_support(np.asarray(samples)), dtype=bool)
    if not inside.all():
        bad = np.asarray(samples)[~inside][0]
        raise AssertionError(f"{family.describe()}: sampled value {bad!r} is outside the family's own support")


def check_sampling(family: ExponentialFamily, params: Array, *, key: Array, n_samples: int = DEFAULT_SAMPLES) -> bool:
    r"""Draws have shape `(n,) + data_shape`, lie in the support, and `mean s(x) ≈ ∇ψ(θ)`.

    Each coordinate of the sample mean must lie within `5·√(∇²ψ_ii(θ)/n)`
    of `∇ψ(θ)`.
    """
    require_x64()
    name = family.describe()
    samples, statistics = sample_statistics(family, key, params, n_samples)
    expected_shape = (n_samples, *family.data_shape)
    if samples.shape != expected_shape:
        raise AssertionError(
            f"{name}: sample of shape {(n_samples,)} returned {samples.shape}, expected {expected_shape}"
        )
    _check_in_support(family, samples)
    error = np.sqrt(np.diag(evaluate(family, "fisher_information", params)) / n_samples)
    means = evaluate(family, "means", params).ravel()
    assert_z_scores(f"{name}: sample mean of s(x) vs ∇ψ(θ)", statistics.mean(0), means, error)
    return True


def check_fit_recovers(
    family: ExponentialFamily, params: Array, *, key: Array, n_samples: int = DEFAULT_SAMPLES
) -> bool:
    r"""`θ̂ = fit(x_1..x_n)` is within `5·√((∇²ψ(θ))⁻¹_ii / n)` of `θ` in every coordinate.

    Choose `n` large enough that every statistic is away from the edge of
    its range (an all-zero Bernoulli coordinate gives `θ̂ = −∞`).
    """
    require_x64()
    name = family.describe()
    samples, _ = sample_statistics(family, key, params, n_samples)
    estimate = evaluate(family, "fit", samples)
    if not np.isfinite(estimate).all():
        raise AssertionError(
            f"{name}: fit of {n_samples} samples is not finite ({estimate}); a statistic sits at the edge "
            "of its range: use more samples or parameters further from the boundary"
        )
    covariance = np.linalg.inv(evaluate(family, "fisher_information", params))
    error = np.sqrt(np.diag(covariance) / n_samples)
    assert_z_scores(f"{name}: fitted θ̂ vs θ", estimate.ravel(), np.ravel(params), error)
    return True
