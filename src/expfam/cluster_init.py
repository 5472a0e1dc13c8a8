r"""Starting the clusters from KMeans: each cluster begins as the observable fitted to its KMeans points.

A model with the `xk` block gives every cluster its own observable bias
($\theta_X = a + U e_k + \ldots$, docs/blocks.md). [`kmeans_cluster_init`][expfam.cluster_init.kmeans_cluster_init] runs
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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

from expfam.errors import ConfigurationError
from expfam.family import Array
from expfam.model import Harmonium, Params

#: KMeans restarts; the one with the lowest inertia is kept.
KMEANS_N_INIT = 3


def require_cluster_biases(model: Harmonium) -> None:
    """Refuse a model whose clusters have no observable bias of their own to start from KMeans.

    Raises:
        ConfigurationError: no `xk` block, or an observable whose natural parameters are not
            the one vector per observation that the block shifts.
    """
    blocks = {block.name: block for block in model.blocks}
    if "xk" not in blocks:
        raise ConfigurationError(
            f"cluster_init 'kmeans' starts the per-cluster observable biases of the 'xk' block, which blocks "
            f"{'+'.join(model.block_names)} do not have; use the 'full' block set (or add 'xk'), or "
            "cluster_init 'latent_kmeans' or 'random'",
            offending="cluster_init",
        )
    shape = tuple(model.observable.param_shape)
    if shape != (blocks["xk"].param_shape()[0],):
        raise ConfigurationError(
            f"cluster_init 'kmeans' needs an observable whose natural parameters are one vector per observation; "
            f"{model.observable.describe()} has shape {shape}; use cluster_init 'random'",
            offending="cluster_init",
        )


def kmeans_labels(x: np.ndarray | Array, n_clusters: int, *, seed: int = 0, n_init: int = KMEANS_N_INIT) -> np.ndarray:
    """KMeans cluster of every row of `x` (`KMeans(n_clusters, n_init, random_state=seed)`), shape `(N,)`.

    Raises:
        ConfigurationError: fewer rows than clusters.
    """
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if rows.shape[0] < n_clusters:
        raise ConfigurationError(
            f"cluster_init 'kmeans' needs at least n_clusters={n_clusters} training rows, got {rows.shape[0]}; "
            "lower n_clusters or use cluster_init 'random'",
            offending="cluster_init",
        )
    labels: np.ndarray = KMeans(n_clusters, n_init=n_init, random_state=seed).fit(rows).labels_
    return labels


def kmeans_cluster_init(
    model: Harmonium, params: Params, x: np.ndarray | Array, *, seed: int = 0, n_init: int = KMEANS_N_INIT
) -> Params:
    r"""`params` with the observable bias, the `xk` block and the cluster prior started from KMeans.

    `a = θ_0`, `U e_k = θ_k − θ_0` with `θ_k` the observable fitted to the rows of `x` in
    KMeans cluster `k` (module docstring), and `b_k ← b_k + (log π_k − log π_0) − (l_k − l_0)`
    with `l_k = b_k + ψ_Y(θ_k^Y)` the prior's cluster logits and `π_k = n_k / N` the KMeans
    shares, so that `p(k) = π_k` exactly. Other parameters are returned as they are.

    Raises:
        ConfigurationError: the model has no `xk` block, its observable's parameters are not
            one vector the block shifts, or `x` has fewer rows than clusters.
    """
    require_cluster_biases(model)
    observable = model.observable
    k = model.n_clusters
    labels = kmeans_labels(x, k, seed=seed, n_init=n_init)
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


__all__ = ["KMEANS_N_INIT", "kmeans_cluster_init", "kmeans_labels", "require_cluster_biases"]
