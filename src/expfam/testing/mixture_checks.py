r"""Identity checks of the latent mixture `p(y, k)` of docs/mixture.md.

The brute-force reference tabulates, for every enumerated `y` and every
cluster `k`, the unnormalised log weight written from the definition of
the mixture's sufficient statistic `s_Z(y, k) = (s_Y(y), s_Y(y)⊗e_k, e_k)`:

$$
\log w(y, k) = b_y\cdot s_Y(y) + [k \ge 1]\big(W_{yk}[\ldots, k-1]\cdot s_Y(y) + b_k[k-1]\big) + \log h_Y(y),
$$

$$
\psi_Z^{\text{brute}} = \log \sum_{y, k} w(y, k).
$$

Checks that need the table return `False` when the latent family cannot be
enumerated (a continuous latent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture, MixtureParams
from expfam.testing._assertions import (
    assert_at_least,
    assert_close,
    assert_z_scores,
    require_x64,
)
from expfam.testing._compiled import evaluate, over_points
from expfam.testing.enumeration import DEFAULT_MAX_POINTS, enumerate_support
from expfam.testing.family_checks import DEFAULT_SAMPLES, roundoff

MIN_CLUSTER_SAMPLES: int = 50
"""Clusters with fewer draws are left out of the per-cluster mean check."""


def cluster_params_by_definition(mixture: LatentMixture, params: MixtureParams) -> np.ndarray:
    """`θ_k = b_y + W_yk e_k` for `k = 0..K−1` (`e_0 = 0`): shape `(K,) + param_shape`."""
    bias = np.asarray(params["b_y"])
    offsets = np.moveaxis(np.asarray(params["W_yk"]), -1, 0)
    return bias + np.concatenate([np.zeros_like(bias)[None], offsets])


@jax.jit
def _joint_weights(mixture: LatentMixture, params: MixtureParams, points: Array) -> tuple[Array, Array]:
    """`log w(y, k)` (shape `(m, K)`) from the definition of `s_Z`, and `s_Y(y)`."""
    latent = mixture.latent
    statistics = jax.vmap(latent.sufficient_statistic)(points)
    axes = tuple(range(1, statistics.ndim))
    own = jnp.sum(statistics * params["b_y"], axis=axes) + jax.vmap(latent.log_base_measure)(points)
    coupled = jnp.tensordot(statistics, params["W_yk"], axes=len(latent.param_shape))
    return jnp.concatenate([own[:, None], own[:, None] + coupled + params["b_k"]], axis=1), statistics


@dataclass(frozen=True)
class EnumeratedMixture:
    """Brute-force table of `p(y, k)`: points `y`, `s_Y(y)`, `ψ_Z` and `log p` of shape `(m, K)`."""

    points: np.ndarray
    statistics: np.ndarray
    log_normaliser: float
    log_probabilities: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        """`p(y, k)`, shape `(m, K)`."""
        return np.exp(self.log_probabilities)


def enumerate_mixture(
    mixture: LatentMixture,
    params: MixtureParams,
    *,
    also: tuple[MixtureParams, ...] = (),
    max_points: int = DEFAULT_MAX_POINTS,
) -> EnumeratedMixture | None:
    """Tabulate `p(y, k)` by brute force, or `None` when the latent cannot be enumerated.

    Args:
        mixture: the mixture.
        params: its named parameters.
        also: further parameters the support must be truncated for (to share one table support).
        max_points: largest number of `(y, k)` pairs.
    """
    stack = np.concatenate([cluster_params_by_definition(mixture, p) for p in (params, *also)])
    points = enumerate_support(mixture.latent, max_points // mixture.n_clusters, params=stack)
    if points is None:
        return None
    weights, statistics = over_points(_joint_weights, mixture, params, points=points)
    normaliser = float(logsumexp(weights))
    return EnumeratedMixture(points, statistics, normaliser, weights - normaliser)


@jax.jit
def _joint_log_densities(mixture: LatentMixture, params: MixtureParams, points: Array) -> Array:
    clusters = jnp.arange(mixture.n_clusters)
    return jax.vmap(lambda y: jax.vmap(lambda k: mixture.log_density(params, y, k))(clusters))(points)


@jax.jit
def _conditional_log_densities(mixture: LatentMixture, params: MixtureParams, points: Array) -> Array:
    """`log p(y | k)` from the latent family at `conditional_params(k)`: shape `(m, K)`."""
    thetas = jax.vmap(lambda k: mixture.conditional_params(params, k))(jnp.arange(mixture.n_clusters))
    return jax.vmap(lambda y: jax.vmap(lambda t: mixture.latent.log_density(t, y))(thetas))(points)


@partial(jax.jit, static_argnames="n_samples")
def _mixture_draws(
    mixture: LatentMixture, key: Array, params: MixtureParams, n_samples: int
) -> tuple[Array, Array, Array]:
    y, k = mixture.sample(key, params, (n_samples,))
    statistics = jax.vmap(mixture.latent.sufficient_statistic)(y).reshape(n_samples, mixture.latent.dim)
    return y, k, statistics


@jax.jit
def _cluster_moments(latent: ExponentialFamily, thetas: Array) -> tuple[Array, Array]:
    """Flattened `∇ψ_Y(θ_k)` and `diag ∇²ψ_Y(θ_k)` for every cluster."""
    means = jax.vmap(latent.means)(thetas).reshape(thetas.shape[0], latent.dim)
    return means, jax.vmap(lambda t: jnp.diag(latent.fisher_information(t)))(thetas)


def check_mixture_log_partition(mixture: LatentMixture, params: MixtureParams) -> bool:
    r"""`ψ_Z(θ_Z) = log Σ_{y,k} h_Y(y) exp(θ_Z·s_Z(y, k))` by brute-force enumeration."""
    require_x64()
    table = enumerate_mixture(mixture, params)
    if table is None:
        return False
    psi = evaluate(mixture, "log_partition", params)
    assert_close(f"{_name(mixture)}: ψ_Z vs brute-force logsumexp over (y, k)", psi, table.log_normaliser)
    return True


def check_mixture_normalisation(mixture: LatentMixture, params: MixtureParams) -> bool:
    r"""`log p(y, k)` equals the brute-force table at every `(y, k)`, and `Σ_{y,k} p(y, k) = 1`."""
    require_x64()
    table = enumerate_mixture(mixture, params)
    if table is None:
        return False
    log_density = over_points(_joint_log_densities, mixture, params, points=table.points)
    assert_close(f"{_name(mixture)}: log p(y, k) vs enumeration", log_density, table.log_probabilities)
    assert_close(f"{_name(mixture)}: Σ_(y,k) p(y, k) = 1", np.sum(np.exp(log_density)), 1.0)
    return True


def check_mixture_means(mixture: LatentMixture, params: MixtureParams) -> bool:
    r"""`∇ψ_Z(θ_Z) = E[s_Z] = (E[s_Y], E[s_Y ⊗ e_k], E[e_k])` by enumeration."""
    require_x64()
    table = enumerate_mixture(mixture, params)
    if table is None:
        return False
    probabilities = table.probabilities
    expected = {
        "b_y": np.tensordot(probabilities.sum(axis=1), table.statistics, axes=1),
        "W_yk": np.moveaxis(np.tensordot(probabilities[:, 1:], table.statistics, axes=([0], [0])), 0, -1),
        "b_k": probabilities[:, 1:].sum(axis=0),
    }
    means = evaluate(mixture, "means", params)
    for slot, value in expected.items():
        assert_close(f"{_name(mixture)}: ∇ψ_Z[{slot}] = E[s_Z][{slot}]", means[slot], value)
    return True


def check_mixture_conditional(mixture: LatentMixture, params: MixtureParams) -> bool:
    r"""The enumerated `p(k) = Σ_y p(y, k)` and `p(y | k) = p(y, k)/p(k)` match the API.

    `p(k)` must equal [`cluster_probabilities`][expfam.mixture.LatentMixture.cluster_probabilities]
    and `p(y | k)` the latent family at
    [`conditional_params`][expfam.mixture.LatentMixture.conditional_params] (`atol = 1e-8` in log space).
    """
    require_x64()
    table = enumerate_mixture(mixture, params)
    if table is None:
        return False
    name = _name(mixture)
    marginal = table.probabilities.sum(axis=0)
    assert_close(f"{name}: p(k) vs enumeration", evaluate(mixture, "cluster_probabilities", params), marginal)
    log_conditional = over_points(_conditional_log_densities, mixture, params, points=table.points)
    expected = table.log_probabilities - np.log(marginal)
    assert_close(f"{name}: log p(y | k) vs enumeration", log_conditional, expected, atol=1e-8)
    return True


def check_mixture_kl(mixture: LatentMixture, params: MixtureParams, other: MixtureParams) -> bool:
    r"""`KL(θ‖θ′) ≥ 0`, `KL(θ‖θ) = 0` and, by enumeration, `KL = Σ_{y,k} p log(p/q)`.

    Up to roundoff `1e3·eps·(1 + |ψ_Z(θ)| + |ψ_Z(θ′)|)`.
    """
    require_x64()
    name = _name(mixture)
    kl = evaluate(mixture, "kl_divergence", params, other)
    psi, other_psi = evaluate(mixture, "log_partition", params), evaluate(mixture, "log_partition", other)
    tolerance = roundoff(abs(psi) + abs(other_psi))
    assert_at_least(f"{name}: KL(θ‖θ′)", kl, 0.0, tol=tolerance)
    assert_close(f"{name}: KL(θ‖θ) = 0", evaluate(mixture, "kl_divergence", params, params), 0.0, atol=tolerance)
    first = enumerate_mixture(mixture, params, also=(other,))
    second = enumerate_mixture(mixture, other, also=(params,))
    if first is None or second is None:
        return True
    expected = np.sum(first.probabilities * (first.log_probabilities - second.log_probabilities))
    assert_close(f"{name}: KL = Σ_(y,k) p log(p/q)", kl, expected, atol=tolerance)
    return True


def check_mixture_sampling(
    mixture: LatentMixture, params: MixtureParams, *, key: Array, n_samples: int = DEFAULT_SAMPLES
) -> bool:
    r"""Draws of `(y, k)` match `p(k)`, `E[s_Y(y) | k]` and `E[s_Y(y)]` within `|z| < 5`.

    * cluster frequencies against `p(k)` (by enumeration when possible),
      standard error `√(p(1−p)/n)`;
    * within each cluster with at least 50 draws, the mean of `s_Y` against
      `∇ψ_Y(θ_k)`, standard error `√(∇²ψ_Y(θ_k)_ii / n_k)`;
    * overall, the mean of `s_Y` against `∇ψ_Z[b_y]`, with the variance
      from the law of total variance.
    """
    require_x64()
    name, latent = _name(mixture), mixture.latent
    y, k, statistics = map(np.asarray, _mixture_draws(mixture, key, params, n_samples))
    if y.shape != (n_samples, *latent.data_shape) or k.shape != (n_samples,):
        raise AssertionError(f"{name}: sample of {n_samples} returned shapes {y.shape} and {k.shape}")
    table = enumerate_mixture(mixture, params)
    if table is None:
        cluster_probabilities = evaluate(mixture, "cluster_probabilities", params)
    else:
        cluster_probabilities = table.probabilities.sum(axis=0)
    counts = np.bincount(k, minlength=mixture.n_clusters)
    if counts.size != mixture.n_clusters or k.min() < 0:
        raise AssertionError(f"{name}: sampled clusters outside 0..{mixture.n_clusters - 1}")
    standard_error = np.sqrt(cluster_probabilities * (1 - cluster_probabilities) / n_samples)
    assert_z_scores(f"{name}: cluster frequencies vs p(k)", counts / n_samples, cluster_probabilities, standard_error)
    cluster_means, cluster_variances = map(
        np.asarray, _cluster_moments(latent, cluster_params_by_definition(mixture, params))
    )
    for cluster in range(mixture.n_clusters):
        chosen = statistics[k == cluster]
        if chosen.shape[0] >= MIN_CLUSTER_SAMPLES:
            error = np.sqrt(cluster_variances[cluster] / chosen.shape[0])
            assert_z_scores(f"{name}: mean s_Y(y) given k={cluster}", chosen.mean(0), cluster_means[cluster], error)
    overall = evaluate(mixture, "means", params)["b_y"].ravel()
    variance = cluster_probabilities @ (cluster_variances + cluster_means**2) - overall**2
    assert_z_scores(f"{name}: mean s_Y(y)", statistics.mean(0), overall, np.sqrt(np.maximum(variance, 0) / n_samples))
    return True


def _name(mixture: LatentMixture) -> str:
    return f"LatentMixture({mixture.latent.describe()}, n_clusters={mixture.n_clusters})"
