r"""Cluster starts: where the mixture's clusters begin, from KMeans on the data or on the latent units.

`[train] cluster_init` ([`TrainConfig`][expfam.experiment.config.TrainConfig]) chooses one of
`"random"` (the parameters' own random start), `"kmeans"` and `"latent_kmeans"`;
[`apply_cluster_init`][expfam.experiment.train.cluster_start.apply_cluster_init] applies it between
chunks of the training loop ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]).

## KMeans on the data (`"kmeans"`)

A model with the `xk` block gives every cluster its own observable bias
($\theta_X = a + U e_k + \ldots$, docs/blocks.md). [`kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init] runs
KMeans with $K$ clusters on the training rows and sets

$$
\theta_k = (\nabla\psi_X)^{-1}\big(0.99\,\overline{s(x)}_{\{x:\,c(x)=k\}} + 0.01\,\nabla\psi_X(\theta_{ref})\big),
\qquad a = \theta_0,\qquad U e_k = \theta_k - \theta_0\ (k \ge 1),
$$

(the observable's own data fit, [`initialize`][expfam.family.ExponentialFamily.initialize], on the
points of KMeans cluster $k$), and shifts $b_k$ so that the prior's cluster
probabilities are the KMeans cluster shares, $p(k) = n_k / N$. Every other parameter
keeps its value. The model and the objective are unchanged; only the starting point moves.

Why (docs/collapse.md): with random cluster biases the full model's posterior starts on a
few clusters, and a cluster's decoder (`U_k`, `V_k`) learns only from the points it
holds, so clusters that hold none when the decoders start to move never catch up. Started
from KMeans, every cluster holds its share of the data and has a decoder fitted to it from
step 0 — the standard start of a mixture model (as scikit-learn's `GaussianMixture`).

## Spectral clustering of the data (`"spectral"`)

The same start from another partition of the training rows:
[`spectral_labels`][expfam.experiment.train.cluster_start.spectral_labels] clusters the rows on
their 10-nearest-neighbour graph (scikit-learn's `SpectralClustering`), and
[`spectral_cluster_init`][expfam.experiment.train.cluster_start.spectral_cluster_init] fits each
cluster's observable to its points exactly as above. The graph follows the data's shape where
KMeans cuts it into convex pieces: on the MNIST dev set the partition's NMI with the digits is
0.69 against KMeans' 0.55 (K = 20), and the full model, which keeps most of the partition it
starts from, ends higher (docs/coupling.md). Above
`SPECTRAL_MAX_ROWS` (10 000) rows the graph is
built on that many rows drawn with the seed, and every other row joins the cluster with the
nearest mean.

## KMeans on the latent units (`"latent_kmeans"`)

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
`cluster_init_step` ([`cluster_init_due`][expfam.experiment.train.cluster_start.cluster_init_due]), to every
training row; the latent family must have means in `(0, 1)` (Bernoulli units).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import posterior as batched
from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig
from expfam.family import Array
from expfam.model import Harmonium, Params

# _late_imports: scikit-learn is imported inside the functions that cluster, not at the top, because
# importing it takes about a second and every command (`expfam --help` too) imports this module.

#: KMeans restarts; the one with the lowest inertia is kept.
KMEANS_N_INIT = 3
#: The starts that fit every cluster's observable bias to a partition of the training rows.
PARTITION_STARTS: tuple[str, ...] = ("kmeans", "spectral")
#: Neighbours per row in spectral clustering's graph.
SPECTRAL_NEIGHBOURS = 10
#: Rows spectral clustering is fitted on at most (its graph and eigenvectors grow with the rows).
SPECTRAL_MAX_ROWS = 10_000


def require_cluster_biases(model: Harmonium, start: str = "kmeans") -> None:
    """Refuse a model whose clusters have no observable bias of their own to start from KMeans.

    Raises:
        ConfigurationError: no `xk` block, or an observable whose natural parameters are not
            the one vector per observation that the block shifts.
    """
    blocks = {block.name: block for block in model.blocks}
    if "xk" not in blocks:
        raise ConfigurationError(
            f"cluster_init {start!r} starts the per-cluster observable biases of the 'xk' block, which blocks "
            f"{'+'.join(model.block_names)} do not have; use the 'full' block set (or add 'xk'), or "
            "cluster_init 'latent_kmeans' or 'random'",
            offending="cluster_init",
        )
    shape = tuple(model.observable.param_shape)
    if shape != (blocks["xk"].param_shape()[0],):
        raise ConfigurationError(
            f"cluster_init {start!r} needs an observable whose natural parameters are one vector per observation; "
            f"{model.observable.describe()} has shape {shape}; use cluster_init 'random'",
            offending="cluster_init",
        )


def _rows_for(x: np.ndarray | Array, n_clusters: int, start: str) -> np.ndarray:
    """The rows of `x` as a float64 matrix, refused when fewer than `n_clusters` (the start named)."""
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if rows.shape[0] < n_clusters:
        raise ConfigurationError(
            f"cluster_init {start!r} needs at least n_clusters={n_clusters} training rows, got {rows.shape[0]}; "
            "lower n_clusters or use cluster_init 'random'",
            offending="cluster_init",
        )
    return rows


def kmeans_labels(x: np.ndarray | Array, n_clusters: int, *, seed: int = 0, n_init: int = KMEANS_N_INIT) -> np.ndarray:
    """KMeans cluster of every row of `x` (`KMeans(n_clusters, n_init, random_state=seed)`), shape `(N,)`.

    Raises:
        ConfigurationError: fewer rows than clusters.
    """
    rows = _rows_for(x, n_clusters, "kmeans")
    from sklearn.cluster import KMeans  # here, not at the top: `_late_imports`

    labels: np.ndarray = KMeans(n_clusters, n_init=n_init, random_state=seed).fit(rows).labels_
    return labels


def spectral_labels(
    x: np.ndarray | Array, n_clusters: int, *, seed: int = 0, max_rows: int = SPECTRAL_MAX_ROWS
) -> np.ndarray:
    """Spectral cluster of every row of `x` on its nearest-neighbour graph, shape `(N,)`.

    `SpectralClustering(n_clusters, affinity="nearest_neighbors", n_neighbors=10, random_state=seed)`
    on the rows (fewer neighbours when there are at most 10 rows). With more than `max_rows` rows,
    it is fitted on `max_rows` of them drawn with `seed`, and each other row joins the cluster whose
    mean is nearest (squared Euclidean distance).

    Raises:
        ConfigurationError: fewer rows than clusters.
    """
    rows = _rows_for(x, n_clusters, "spectral")
    sampled = rows.shape[0] > max_rows
    picked = np.random.default_rng(seed).choice(rows.shape[0], max_rows, replace=False) if sampled else None
    fitted_rows = rows[picked] if picked is not None else rows
    from sklearn.cluster import SpectralClustering  # `_late_imports`

    clustering = SpectralClustering(
        n_clusters,
        affinity="nearest_neighbors",
        n_neighbors=min(SPECTRAL_NEIGHBOURS, fitted_rows.shape[0] - 1),
        random_state=seed,
    )
    with warnings.catch_warnings():  # a graph in several pieces still gives a partition
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        fitted: np.ndarray = np.asarray(clustering.fit(fitted_rows).labels_)
    if picked is None:
        return fitted
    means = np.stack([fitted_rows[fitted == cluster].mean(axis=0) for cluster in range(n_clusters)])
    distances = (rows**2).sum(axis=1)[:, None] - 2.0 * rows @ means.T + (means**2).sum(axis=1)[None, :]
    labels: np.ndarray = distances.argmin(axis=1)
    labels[picked] = fitted
    return labels


def kmeans_cluster_init(
    model: Harmonium, params: Params, x: np.ndarray | Array, *, seed: int = 0, n_init: int = KMEANS_N_INIT
) -> Params:
    r"""`params` with the observable bias, the `xk` block and the cluster prior started from KMeans.

    [`partition_cluster_init`][expfam.experiment.train.cluster_start.partition_cluster_init] with the
    partition of [`kmeans_labels`][expfam.experiment.train.cluster_start.kmeans_labels].

    Raises:
        ConfigurationError: the model has no `xk` block, its observable's parameters are not
            one vector the block shifts, or `x` has fewer rows than clusters.
    """
    require_cluster_biases(model, "kmeans")
    return partition_cluster_init(model, params, x, kmeans_labels(x, model.n_clusters, seed=seed, n_init=n_init))


def spectral_cluster_init(model: Harmonium, params: Params, x: np.ndarray | Array, *, seed: int = 0) -> Params:
    r"""`params` with the observable bias, the `xk` block and the cluster prior started from spectral clustering.

    [`partition_cluster_init`][expfam.experiment.train.cluster_start.partition_cluster_init] with the
    partition of [`spectral_labels`][expfam.experiment.train.cluster_start.spectral_labels].

    Raises:
        ConfigurationError: the model has no `xk` block, its observable's parameters are not
            one vector the block shifts, or `x` has fewer rows than clusters.
    """
    require_cluster_biases(model, "spectral")
    return partition_cluster_init(model, params, x, spectral_labels(x, model.n_clusters, seed=seed))


def partition_cluster_init(model: Harmonium, params: Params, x: np.ndarray | Array, labels: np.ndarray) -> Params:
    r"""`params` with the observable bias, the `xk` block and the cluster prior fitted to the partition `labels`.

    `a = θ_0`, `U e_k = θ_k − θ_0` with `θ_k` the observable fitted to the rows of `x` in
    cluster `k` (module docstring), and `b_k ← b_k + (log π_k − log π_0) − (l_k − l_0)`
    with `l_k = b_k + ψ_Y(θ_k^Y)` the prior's cluster logits and `π_k = n_k / N` the
    clusters' shares, so that `p(k) = π_k` exactly. Other parameters are returned as they are.
    Every cluster `0..K−1` must hold at least one row.

    Raises:
        ValueError: a cluster holds no row.
    """
    require_cluster_biases(model)
    observable = model.observable
    k = model.n_clusters
    if np.any(np.bincount(labels, minlength=k)[:k] == 0) or labels.max(initial=0) >= k:
        raise ValueError(f"every cluster 0..{k - 1} needs at least one row, got sizes {np.bincount(labels).tolist()}")
    data = jnp.asarray(x)
    likelihood = params["likelihood"]
    dtype = likelihood["a"].dtype
    key = jax.random.PRNGKey(0)  # its draws are multiplied by noise=0
    theta = jnp.stack(
        [observable.initialize(key, data=data[np.flatnonzero(labels == cluster)], noise=0.0) for cluster in range(k)]
    ).astype(dtype)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    shares = np.log(counts / counts.sum())
    prior = params["prior"]
    logits = np.asarray(model.mixture.cluster_logits(prior), dtype=np.float64)
    shift = (shares - shares[0]) - (logits - logits[0])
    return {
        **params,
        "prior": {**prior, "b_k": prior["b_k"] + jnp.asarray(shift[1:], dtype=prior["b_k"].dtype)},
        "likelihood": {
            **likelihood,
            "a": theta[0],
            "blocks": {**likelihood["blocks"], "xk": (theta[1:] - theta[0][None]).T.astype(dtype)},
        },
    }


#: Centroid coordinates are clipped into `[CLIP, 1 − CLIP]` (Bernoulli-like latents) before the
#: mean-to-natural map, so that an always-on or always-off unit gets a finite logit (±6.9).
CLIP = 1e-3


@functools.partial(jax.jit, static_argnames="model")
def _posterior_means(model: Harmonium, params: Params, batch: Array) -> Array:
    """`m(batch)`, compiled once per model and shape by `jax.jit` (the model is a static argument)."""
    summary = model.posterior(params, batch)
    return batched.expected_statistics(model.latent, summary)["b_y"].reshape(batch.shape[0], -1)


def posterior_mean_statistics(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """`m(x) = E_q[s_Y(y) | x] = Σ_k q(k|x) ∇ψ_Y(θ_{q,k}(x))` for every row of `x`, shape `(N, n)`."""
    pieces = [
        np.asarray(_posterior_means(model, params, jnp.asarray(x[i : i + batch_size])))
        for i in range(0, x.shape[0], batch_size)
    ]
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
    """KMeans on the posterior mean statistics of `x`, then [`prior_from_clusters`][expfam.experiment.train.cluster_start.prior_from_clusters].

    Returns:
        The new parameters and `{"centroids": (K, n), "sizes": (K,), "labels": (N,)}`
        (a cluster that KMeans leaves empty has size 1).

    Raises:
        ConfigurationError: `x` has fewer rows than clusters, or the latent units are not Bernoulli.
    """
    if np.shape(x)[0] < model.n_clusters:
        raise ConfigurationError(
            f"cluster_init = 'latent_kmeans' needs at least n_clusters = {model.n_clusters} training rows, got "
            f"{np.shape(x)[0]}; use cluster_init = 'random'",
            offending="cluster_init",
        )
    from sklearn.cluster import KMeans  # `_late_imports`

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
    runs [`expfam.experiment.train.cluster_start.kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init] before the first
    step (`done == 0`), `"spectral"`
    [`spectral_cluster_init`][expfam.experiment.train.cluster_start.spectral_cluster_init] likewise, `"latent_kmeans"` runs
    [`latent_kmeans_init`][expfam.experiment.train.cluster_start.latent_kmeans_init] when
    [`cluster_init_due`][expfam.experiment.train.cluster_start.cluster_init_due]. KMeans is seeded with the config's
    `seed` and fitted on every row of `data` (the training rows).
    """
    if config.cluster_init == "kmeans" and done == 0:
        return kmeans_cluster_init(model, params, np.asarray(data), seed=config.seed)
    if config.cluster_init == "spectral" and done == 0:
        return spectral_cluster_init(model, params, np.asarray(data), seed=config.seed)
    if not cluster_init_due(config.cluster_init, config.cluster_init_step, done, config.log_every):
        return params
    new_params, _ = latent_kmeans_init(model, params, np.asarray(data), seed=config.seed)
    return new_params


__all__ = [
    "CLIP",
    "KMEANS_N_INIT",
    "PARTITION_STARTS",
    "SPECTRAL_MAX_ROWS",
    "SPECTRAL_NEIGHBOURS",
    "apply_cluster_init",
    "cluster_init_due",
    "kmeans_cluster_init",
    "kmeans_labels",
    "latent_kmeans_init",
    "partition_cluster_init",
    "posterior_mean_statistics",
    "prior_from_clusters",
    "require_cluster_biases",
    "spectral_cluster_init",
    "spectral_labels",
]
