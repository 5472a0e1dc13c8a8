r"""Distributional identity checks of one exponential family.

Each check states its identity, computes both sides in float64 and raises
`AssertionError` naming the identity and the tolerance when they
disagree. Each returns `True` when it checked the identity and `False`
when it cannot be checked for this family (a continuous family has no
enumerable support, and a Monte Carlo fallback needs a `key`).

Exact identities use `rtol = 1e-8` and `atol = 1e-9`; Monte Carlo ones
accept `|z| < 5`, with standard errors from the Fisher information
`∇²ψ(θ) = Cov_θ[s(x)]` or from the sample standard deviation.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from expfam.family import Array, ExponentialFamily
from expfam.testing._assertions import (
    assert_at_least,
    assert_close,
    assert_z_scores,
    require_x64,
)
from expfam.testing._compiled import evaluate, log_densities, sample_statistics
from expfam.testing.enumeration import (
    DEFAULT_MAX_POINTS,
    enumerate_distribution,
    enumerate_support,
)

DEFAULT_SAMPLES: int = 20_000
"""Draws used by the Monte Carlo checks."""


def roundoff(*values: object) -> float:
    """An absolute tolerance for float64 roundoff in sums of terms of this size: `1e3·eps·(1 + max|v|)`."""
    scale = max(float(np.max(np.abs(np.asarray(v, dtype=float)))) for v in values)
    return 1e3 * float(np.finfo(np.float64).eps) * (1.0 + scale)


def check_mean_map(
    family: ExponentialFamily,
    params: Array,
    *,
    key: Array | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    max_points: int = DEFAULT_MAX_POINTS,
) -> bool:
    r"""`∇ψ(θ) = E_θ[s(x)]`.

    Exact (`rtol = 1e-8`) by enumeration when the support is small and
    discrete; otherwise the mean of `s` over `n_samples` draws, each
    coordinate within `5·√(∇²ψ_ii / n)`.
    """
    require_x64()
    means = evaluate(family, "means", params)
    table = enumerate_distribution(family, params, max_points=max_points)
    if table is not None:
        assert_close(f"{family.describe()}: ∇ψ(θ) = Σ_x p(x) s(x)", means, table.expectation(table.statistics))
        return True
    if key is None:
        return False
    _, statistics = sample_statistics(family, key, params, n_samples)
    error = np.sqrt(np.diag(evaluate(family, "fisher_information", params)) / n_samples)
    assert_z_scores(f"{family.describe()}: sample mean of s(x) vs ∇ψ(θ)", statistics.mean(0), means.ravel(), error)
    return True


def check_normalisation(family: ExponentialFamily, params: Array, *, max_points: int = DEFAULT_MAX_POINTS) -> bool:
    r"""`ψ(θ) = log Σ_x h(x) exp(θ·s(x))` and `Σ_x exp(log p_θ(x)) = 1`, by enumeration.

    A support unbounded above is truncated where its edge mass is below 1e-14
    (see [`enumerate_support`][expfam.testing.enumeration.enumerate_support]). Not
    applicable (`False`) to continuous families.
    """
    require_x64()
    table = enumerate_distribution(family, params, max_points=max_points)
    if table is None:
        return False
    name = family.describe()
    psi = evaluate(family, "log_partition", params)
    assert_close(f"{name}: ψ(θ) = log Σ_x h(x) exp(θ·s(x))", psi, table.log_normaliser)
    total = np.sum(np.exp(log_densities(family, params, table.points)))
    assert_close(f"{name}: Σ_x p(x) = 1", total, 1.0)
    return True


def check_entropy(
    family: ExponentialFamily,
    params: Array,
    *,
    key: Array | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    max_points: int = DEFAULT_MAX_POINTS,
) -> bool:
    r"""`H(θ) = −E_θ[log p_θ(x)]`: by enumeration, else within 5 standard errors of `−mean log p`."""
    require_x64()
    entropy = evaluate(family, "entropy", params)
    table = enumerate_distribution(family, params, max_points=max_points)
    if table is not None:
        expected = -np.sum(table.probabilities * table.log_probabilities)
        assert_close(f"{family.describe()}: H = −Σ_x p log p", entropy, expected)
        return True
    if key is None:
        return False
    samples, _ = sample_statistics(family, key, params, n_samples)
    surprise = -log_densities(family, params, samples)
    error = np.std(surprise) / np.sqrt(n_samples)
    assert_z_scores(f"{family.describe()}: −mean log p(x) vs H", surprise.mean(), entropy, error)
    return True


def check_kl(
    family: ExponentialFamily,
    params: Array,
    other: Array,
    *,
    key: Array | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    max_points: int = DEFAULT_MAX_POINTS,
) -> bool:
    r"""KL divergence: `KL ≥ 0`, `KL(θ‖θ) = 0`, and its value.

    * dual form: `KL(θ‖θ′) = ψ(θ′) + φ(∇ψ(θ)) − θ′·∇ψ(θ)`;
    * by enumeration `KL = Σ_x p log(p/q)`, else (with `key`) the mean of
      `log p(x) − log q(x)` over draws from `p`, within 5 standard errors.

    Exact comparisons are up to roundoff, `1e3·eps·(1 + |ψ(θ)| + |ψ(θ′)|)`.
    """
    require_x64()
    name = family.describe()
    kl = evaluate(family, "kl_divergence", params, other)
    psi, other_psi = evaluate(family, "log_partition", params), evaluate(family, "log_partition", other)
    tolerance = roundoff(abs(psi) + abs(other_psi))
    assert_at_least(f"{name}: KL(θ‖θ′)", kl, 0.0, tol=tolerance)
    assert_close(f"{name}: KL(θ‖θ) = 0", evaluate(family, "kl_divergence", params, params), 0.0, atol=tolerance)
    means = evaluate(family, "means", params)
    dual = other_psi + evaluate(family, "negative_entropy", means) - np.sum(np.asarray(other) * means)
    assert_close(f"{name}: KL = ψ(θ′) + φ(η) − θ′·η", kl, dual, atol=tolerance)
    points = enumerate_support(family, max_points, params=np.stack([params, other]))
    if points is not None:
        first = enumerate_distribution(family, params, points=points)
        second = enumerate_distribution(family, other, points=points)
        assert first is not None and second is not None
        expected = np.sum(first.probabilities * (first.log_probabilities - second.log_probabilities))
        assert_close(f"{name}: KL = Σ_x p log(p/q)", kl, expected, atol=tolerance)
        return True
    if key is None:
        return True
    samples, _ = sample_statistics(family, key, params, n_samples)
    ratio = log_densities(family, params, samples) - log_densities(family, other, samples)
    error = np.std(ratio) / np.sqrt(n_samples)
    assert_z_scores(f"{name}: mean log(p/q) over samples of p vs KL", ratio.mean(), kl, error)
    return True


def check_initialize(family: ExponentialFamily, data: Array, *, key: Array, n_keys: int = 16) -> bool:
    r"""`initialize` returns valid natural parameters: shape `param_shape`, `θ`, `ψ(θ)` and `∇ψ(θ)` finite.

    Checked without data and with `data` (observations, e.g. samples of the family),
    over `n_keys` keys, since the noise added to the starting point may leave
    the parameter space (a geometric `θ < 0` near 0).
    """
    import jax

    name = family.describe()
    for index, subkey in enumerate(jax.random.split(key, n_keys)):
        for label, observed in (("without data", None), ("with data", data)):
            params = np.asarray(family.initialize(subkey, data=observed))
            if params.shape != tuple(family.param_shape):
                raise AssertionError(
                    f"{name}.initialize ({label}) returned shape {params.shape}, expected param_shape "
                    f"{family.param_shape}"
                )
            psi = float(family.log_partition(jnp.asarray(params)))
            means = np.asarray(family.means(jnp.asarray(params)))
            if not (np.all(np.isfinite(params)) and np.isfinite(psi) and np.all(np.isfinite(means))):
                raise AssertionError(
                    f"{name}.initialize ({label}, key {index}) returned natural parameters outside the "
                    f"parameter space: θ={params}, ψ(θ)={psi}, ∇ψ(θ)={means}; keep the start valid "
                    "(ExponentialFamily.initialize halves its noise until is_valid_params holds)"
                )
    return True
