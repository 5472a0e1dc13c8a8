r"""Latent-space KMeans initialisation of the mixture's clusters (docs/training.md, "Cluster initialisation"),
and [`apply_cluster_init`][expfam.experiment.latent_kmeans.apply_cluster_init], which applies a run's
`cluster_init` during training.

The analogue of scikit-learn's `GaussianMixture(init_params="kmeans")` for the
latent mixture `p(y, k)`: with the current parameters, every training row gets
its posterior mean latent statistic

$$
m(x) = E_q[s_Y(y) \mid x] = \sum_k q(k \mid x)\, \nabla\psi_Y(\theta_{q,k}(x)),
$$

KMeans with `K` clusters is run on `{m(x_i)}`, and the prior's cluster
parameters are set so that cluster `k`'s component has the centroid `c_k` as
its mean and the cluster's share of the rows as its probability:

$$
\theta_k = (\nabla\psi_Y)^{-1}(\operatorname{clip}(c_k)),\qquad
b_y = \theta_0,\quad W_{yk} e_k = \theta_k - \theta_0,\quad
b_k\cdot e_k = \log\frac{n_k}{n_0} - \psi_Y(\theta_k) + \psi_Y(\theta_0),
$$

so that `E_{p(y|k)}[s_Y] = c_k` and `p(k) ∝ exp(b_k·e_k + ψ_Y(θ_k)) = n_k / N`.
Only the values of the prior's parameters `(b_y, W_yk, b_k)` change: the model,
the likelihood, `ρ` and the optimiser's state are left as they are.

Training (`[train] cluster_init = "latent_kmeans"`) applies it once, at the first chunk boundary at or after
`cluster_init_step` ([`cluster_init_due`][expfam.experiment.latent_kmeans.cluster_init_due]), to every
training row; the latent family must have means in `(0, 1)` (Bernoulli units).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import posterior as batched
from expfam.cluster_init import kmeans_cluster_init
from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig
from expfam.family import Array
from expfam.model import Harmonium, Params

#: Centroid coordinates are clipped into `[CLIP, 1 − CLIP]` (Bernoulli-like latents) before the
#: mean-to-natural map, so that an always-on or always-off unit gets a finite logit (±6.9).
CLIP = 1e-3


@functools.lru_cache(maxsize=16)
def _compiled_means(model: Harmonium) -> Any:
    """The jitted `(params, batch) → m(batch)` of `model`, compiled once per model and shape (not per call)."""

    @jax.jit
    def means(params: Params, batch: Array) -> Array:
        summary = model.posterior(params, batch)
        return batched.expected_statistics(model.latent, summary)["b_y"].reshape(batch.shape[0], -1)

    return means


def posterior_mean_statistics(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """`m(x) = E_q[s_Y(y) | x] = Σ_k q(k|x) ∇ψ_Y(θ_{q,k}(x))` for every row of `x`, shape `(N, n)`."""
    means = _compiled_means(model)
    pieces = [np.asarray(means(params, jnp.asarray(x[i : i + batch_size]))) for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(pieces, axis=0)


def prior_from_clusters(model: Harmonium, params: Params, centroids: np.ndarray, sizes: np.ndarray) -> Params:
    r"""`params` with the prior set from cluster means `centroids` `(K, n)` and sizes `(K,)` (module docstring).

    Centroids are clipped into `[CLIP, 1 − CLIP]` before `(∇ψ_Y)^{-1}`; every size must be positive.
    """
    latent = model.latent
    if latent.name != "bernoulli":
        raise ConfigurationError(
            f"cluster_init = 'latent_kmeans' needs Bernoulli latent units (means in (0, 1)), got {latent.name!r}; "
            "use cluster_init = 'random'",
            offending=latent.name,
        )
    if np.any(np.asarray(sizes) <= 0):
        raise ValueError(f"every cluster needs at least one row, got sizes {np.asarray(sizes).tolist()}")
    means = jnp.asarray(np.clip(centroids, CLIP, 1.0 - CLIP), jnp.result_type(float))
    means = means.reshape((model.n_clusters, *latent.param_shape))
    theta = jax.vmap(latent.natural_from_means)(means)  # (K,) + P
    psi = jax.vmap(latent.log_partition)(theta)
    log_sizes = jnp.log(jnp.asarray(sizes, jnp.result_type(float)))
    prior = {
        "b_y": theta[0],
        "W_yk": jnp.moveaxis(theta[1:] - theta[0][None], 0, -1),
        "b_k": (log_sizes[1:] - log_sizes[0]) - (psi[1:] - psi[0]),
    }
    old = params["prior"]
    prior = {name: value.astype(old[name].dtype) for name, value in prior.items()}
    return {**params, "prior": prior}


def latent_kmeans_init(
    model: Harmonium, params: Params, x: np.ndarray, *, seed: int = 0, n_init: int = 10
) -> tuple[Params, dict[str, Any]]:
    """KMeans on the posterior mean statistics of `x`, then [`prior_from_clusters`][expfam.experiment.latent_kmeans.prior_from_clusters].

    Returns:
        The new parameters and `{"centroids": (K, n), "sizes": (K,), "labels": (N,)}`
        (a cluster that KMeans leaves empty has size 1).

    Raises:
        ConfigurationError: `x` has fewer rows than clusters, or the latent units are not Bernoulli.
    """
    from sklearn.cluster import KMeans

    if np.shape(x)[0] < model.n_clusters:
        raise ConfigurationError(
            f"cluster_init = 'latent_kmeans' needs at least n_clusters = {model.n_clusters} training rows, got "
            f"{np.shape(x)[0]}; use cluster_init = 'random'",
            offending="cluster_init",
        )
    features = posterior_mean_statistics(model, params, np.asarray(x))
    kmeans = KMeans(model.n_clusters, n_init=n_init, random_state=seed).fit(features)
    labels = np.asarray(kmeans.labels_)
    # a cluster that KMeans leaves empty (fewer distinct rows than clusters) counts as one row
    sizes = np.maximum(np.bincount(labels, minlength=model.n_clusters), 1)
    centroids = np.asarray(kmeans.cluster_centers_)
    return prior_from_clusters(model, params, centroids, sizes), {
        "centroids": centroids,
        "sizes": sizes,
        "labels": labels,
    }


def cluster_init_due(cluster_init: str, cluster_init_step: int, done: int, log_every: int) -> bool:
    """Whether the cluster initialisation runs before the chunk that starts at step `done`.

    Chunks start at multiples of `log_every`; the initialisation runs at the first of
    them at or after `cluster_init_step`, i.e. when
    `cluster_init_step ≤ done < cluster_init_step + log_every`, so a run resumed from a
    checkpoint at any step makes the same choice as one run straight through.
    """
    return cluster_init == "latent_kmeans" and cluster_init_step <= done < cluster_init_step + log_every


def apply_cluster_init(
    model: Harmonium, config: TrainConfig, params: Params, data: Array | np.ndarray, done: int
) -> Params:
    """`params` after the run's cluster initialisation when it is due before step `done` (else unchanged).

    `config` is the run's [`TrainConfig`][expfam.experiment.config.TrainConfig]: `cluster_init = "kmeans"`
    runs [`expfam.cluster_init.kmeans_cluster_init`][expfam.cluster_init.kmeans_cluster_init] before the first
    step (`done == 0`), `"latent_kmeans"` runs
    [`latent_kmeans_init`][expfam.experiment.latent_kmeans.latent_kmeans_init] when
    [`cluster_init_due`][expfam.experiment.latent_kmeans.cluster_init_due]. KMeans is seeded with the config's
    `seed` and fitted on every row of `data` (the training rows).
    """
    if config.cluster_init == "kmeans" and done == 0:
        return kmeans_cluster_init(model, params, np.asarray(data), seed=config.seed)
    if not cluster_init_due(config.cluster_init, config.cluster_init_step, done, config.log_every):
        return params
    new_params, _ = latent_kmeans_init(model, params, np.asarray(data), seed=config.seed)
    return new_params
