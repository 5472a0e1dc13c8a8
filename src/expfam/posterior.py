r"""`η_q(x)` and the batched quantities every loss term reads, computed once per step (docs/model.md).

For a batch of posterior parameters `η_q = (b_y, W_yk, b_k)` (leaves with a
leading batch axis `B`) every loss term needs the cluster logits

$$
\ell_k = b_k\cdot e_k + \psi_Y(\theta_k),\qquad \theta_0 = b_y,\quad
\theta_k = b_y + W_{yk} e_k\ (k \ge 1),\qquad
\psi_Z = \operatorname{logsumexp}_k \ell_k,\qquad q(k\mid x) = e^{\ell_k - \psi_Z}.
$$

[`Harmonium.posterior`][expfam.model.Harmonium.posterior] computes them once, as one
[`Posterior`][expfam.posterior.Posterior]; the loss of a training step hands that one value to every
term ([`expfam.objective.StepContext`][expfam.objective.StepContext]), so the gradient flows back
through `η_q(x)` once (for the full model one `D × n(K−1)` adjoint product, not one per term).

The cluster parameters are kept in `W_yk`'s own layout, `(B,) + P + (K−1,)`
with the cluster axis last (`P` the latent's parameter shape), and the
reference cluster 0 apart, so no `(B, K, n)` transpose or concatenation is
materialised (such copies are a large part of the step; docs/benchmarks-history.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture, MixtureParams, sample_categorical


class Posterior(NamedTuple):
    r"""`η_q(x)` and the cluster quantities every loss term reads, for a batch of `B` observations.

    Attributes:
        params: `η_q(x)`, mixture parameters with a leading batch axis `B`.
        cluster_params: `θ_k = b_y + W_yk e_k` for `k ≥ 1`, shape `(B,) + P + (K−1,)`
            (cluster 0's are `params["b_y"]`).
        logits: `ℓ_k = b_k·e_k + ψ_Y(θ_k)`, shape `(B, K)`.
        log_partition: `ψ_Z(η_q) = logsumexp_k ℓ_k`, shape `(B,)`.
        responsibilities: `q(k | x) = softmax_k ℓ_k`, shape `(B, K)`.
        shared_w_yk: the unbatched `W_yk` leaf when no block makes `η_q`'s `W_yk` depend on `x`
            (then `params["W_yk"]` is that leaf broadcast over the batch), else `None`.
            [`log_density`][expfam.posterior.log_density] then multiplies by it once for the whole
            batch instead of by one copy per observation.
    """

    params: MixtureParams
    cluster_params: Array
    logits: Array
    log_partition: Array
    responsibilities: Array
    shared_w_yk: Array | None = None


def _over_clusters(function: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Map a function of one latent parameter over `(B,) + P + (C,)` (cluster axis last)."""
    return jax.vmap(jax.vmap(function, in_axes=-1, out_axes=-1))


def summarise(latent: ExponentialFamily, params: MixtureParams, shared_w_yk: Array | None = None) -> Posterior:
    r"""The [`Posterior`][expfam.posterior.Posterior] of batched posterior parameters `η_q` (module docstring).

    `shared_w_yk` is `η_q`'s `W_yk` before it was broadcast over the batch, when it does not depend on `x`.
    """
    b_y = params["b_y"]
    cluster_params = b_y[..., None] + params["W_yk"]
    psi_rest = _over_clusters(latent.log_partition)(cluster_params)  # (B, K-1)
    psi_0 = jax.vmap(latent.log_partition)(b_y)
    logits = jnp.concatenate([psi_0[:, None], psi_rest + params["b_k"]], axis=-1)
    log_partition = jax.nn.logsumexp(logits, axis=-1)
    responsibilities = jnp.exp(logits - log_partition[:, None])
    return Posterior(params, cluster_params, logits, log_partition, responsibilities, shared_w_yk)


def expected_statistics(latent: ExponentialFamily, posterior: Posterior) -> MixtureParams:
    r"""Mixture means `E_q[s_Z] = (Σ_k q_k μ_k,\ q_k μ_k\ (k ≥ 1),\ q_k\ (k ≥ 1))`, `μ_k = ∇ψ_Y(θ_k)`."""
    q = posterior.responsibilities
    extra = (1,) * (posterior.params["b_y"].ndim - 1)
    means_0 = jax.vmap(latent.means)(posterior.params["b_y"])  # (B,) + P
    means_rest = _over_clusters(latent.means)(posterior.cluster_params)  # (B,) + P + (K-1,)
    weights_rest = q[:, 1:].reshape((q.shape[0], *extra, -1))
    mean_w_yk = means_rest * weights_rest
    mean_b_y = q[:, 0].reshape((q.shape[0], *extra)) * means_0 + jnp.sum(mean_w_yk, axis=-1)
    return {"b_y": mean_b_y, "W_yk": mean_w_yk, "b_k": q[:, 1:]}


def prior_kl(mixture: LatentMixture, prior: MixtureParams, posterior: Posterior) -> Array:
    r"""`KL(q(z | x) ‖ p(z))` in closed form (Bregman form of `ψ_Z`), shape `(B,)`.

    $$
    \mathrm{KL} = \psi_Z(\theta_Z) - \psi_Z(\eta_q) - E_q[s_Z]\cdot(\theta_Z - \eta_q),
    $$

    with the mixture means of [`expected_statistics`][expfam.posterior.expected_statistics], so no
    second-order autodiff of `ψ_Z` is needed.
    """
    means = expected_statistics(mixture.latent, posterior)
    difference = jax.tree.map(lambda theta, eta: theta - eta, prior, posterior.params)
    expected = sum(jnp.sum(means[name] * difference[name], axis=tuple(range(1, means[name].ndim))) for name in means)
    return mixture.log_partition(prior) - posterior.log_partition - expected


def log_density(latent: ExponentialFamily, posterior: Posterior, y: Array, k: Array) -> Array:
    r"""`log q(z_{bs}) = s_Y(y_{bs})·θ_{k_{bs}} + b_k·e_{k_{bs}} + log h_Y(y_{bs}) − ψ_Z`, shape `(B, S)`.

    `s_Y·θ_k = s_Y·b_y + s_Y·W_yk e_k`: the second part for every cluster is one batched product
    `(S, n)·(n, K−1)` per observation (one `(B·S, n)·(n, K−1)` product when `W_yk` is the same for every
    observation, [`Posterior.shared_w_yk`][expfam.posterior.Posterior]), then the sampled cluster's
    column is picked (0 for the reference), so the gradient is a product as well, not a scatter.
    """
    batch, n_samples = k.shape
    stats = jax.vmap(jax.vmap(latent.sufficient_statistic))(y).reshape(batch, n_samples, -1)
    b_y = posterior.params["b_y"].reshape(batch, -1)
    shared = posterior.shared_w_yk
    if shared is not None:  # the same W_yk for every observation (no block updates it): one product
        products = jnp.einsum("bsn,nj->bsj", stats, shared.reshape(b_y.shape[1], -1))
    else:
        products = jnp.einsum("bsn,bnj->bsj", stats, posterior.params["W_yk"].reshape(batch, b_y.shape[1], -1))
    per_cluster = products + posterior.params["b_k"][:, None, :]
    index = jnp.maximum(k - 1, 0)[..., None]
    picked = jnp.where(k > 0, jnp.take_along_axis(per_cluster, index, axis=-1)[..., 0], 0.0)
    base = jax.vmap(jax.vmap(latent.log_base_measure))(y)
    return jnp.einsum("bsn,bn->bs", stats, b_y) + picked + base - posterior.log_partition[:, None]


def score_function_elbo(baseline: Array, log_q: Array, r: Array) -> tuple[Array, Array]:
    r"""Score-function surrogate and Monte-Carlo ELBO from `c(x)` `(B,)` and, at `S` stop-gradient states, `log q(z_s|x)` and `r(z_s)` `(B, S)`.

    With `r̄ = mean(sg(r_s))`:

    $$
    \text{surrogate} = c(x) + \operatorname{mean}_s r_s
      + \sum_s \frac{(\mathrm{sg}(r_s) - \bar r)\,\log q(z_s\mid x)}{S-1} - \mathrm{sg}(\cdot).
    $$

    The surrogate's value equals the Monte-Carlo ELBO `c(x) + mean(r_s)`;
    its gradient is the score-function estimator, unbiased: dividing by
    `S − 1` rather than `S` is the same as the leave-one-out baseline
    `mean_s (r_s − r̄_{−s}) ∇log q(z_s|x)` (`mean` would shrink the
    score part by `(S − 1)/S`). With `S = 1` there is no baseline.

    Returns:
        `(surrogate, elbo)`, each of shape `(B,)`.
    """
    n_samples = r.shape[1]
    control = jnp.mean(r, axis=1, keepdims=True) if n_samples > 1 else jnp.zeros_like(r)
    centred = jax.lax.stop_gradient(r - control)
    score = jnp.sum(centred * log_q, axis=1) / max(n_samples - 1, 1)
    elbo = baseline + jnp.mean(r, axis=1)
    return elbo + score - jax.lax.stop_gradient(score), elbo


def sample(latent: ExponentialFamily, key: Array, posterior: Posterior, n_samples: int) -> tuple[Array, Array]:
    """`k ~ q(k|x)` by inverse CDF, then `y ~ p(y | θ_k)`: shapes `(B, S) + data_shape` and `(B, S)`."""
    key_k, key_y = jax.random.split(key)
    batch = posterior.logits.shape[0]
    k = sample_categorical(key_k, posterior.logits[:, None, :], (batch, n_samples))
    extra = (1,) * (posterior.params["b_y"].ndim - 1)
    index = jnp.maximum(k - 1, 0).reshape((batch, *extra, n_samples))
    rest = jnp.take_along_axis(posterior.cluster_params, index, axis=-1)  # (B,) + P + (S,)
    rest = jnp.moveaxis(rest, -1, 1)  # (B, S) + P
    theta = jnp.where(k.reshape((batch, n_samples, *extra)) > 0, rest, posterior.params["b_y"][:, None])
    return latent.sample(key_y, theta, (batch, n_samples)), k
