r"""The latent mixture `p(y, k)` of docs/mixture.md over any base family.

The prior over `z = (y, k)` is an exponential family with

$$
s_Z(z) = (s_Y(y),\ s_Y(y)\otimes e_k,\ e_k),\qquad
\theta_Z = (b_y, W_{yk}, b_k),
$$

$$
\psi_Z(\theta_Z) = \operatorname{logsumexp}_{k=0}^{K-1}
    \big[\psi_Y(b_y + W_{yk} e_k) + b_k\cdot e_k\big],
$$

so `p(k) ∝ exp(b_k·e_k + ψ_Y(b_y + W_yk e_k))` and `p(y | k)` is the base
family at `b_y + W_yk e_k`. Parameters and statistics are named pytrees
`{"b_y", "W_yk", "b_k"}` (`W_yk` has shape `param_shape + (K−1,)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

import jax
import jax.numpy as jnp

from expfam.errors import ConfigurationError
from expfam.families.categorical import Categorical, full_logits
from expfam.family import Array, ExponentialFamily

MixtureParams = dict[str, Array]


def sample_categorical(key: Array, logits: Array, shape: tuple[int, ...]) -> Array:
    """Draw categories from unnormalised `logits` (last axis) by inverse CDF: one uniform per draw.

    `logits` broadcasts against `shape + (K,)`. Cheaper than the Gumbel trick,
    which needs `K` random numbers per draw.
    """
    cumulative = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    u = jax.random.uniform(key, (*shape, 1)) * cumulative[..., -1:]
    return jnp.minimum(jnp.sum(cumulative < u, axis=-1), logits.shape[-1] - 1)


def tree_vdot(a: MixtureParams, b: MixtureParams) -> Array:
    """`Σ` over every leaf of `a * b` (inner product of two named pytrees)."""
    return jnp.asarray(sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)))


@final
@jax.tree_util.register_static
@dataclass(frozen=True)
class LatentMixture:
    """Mixture of `n_clusters` members of `latent` as one exponential family over `(y, k)`."""

    latent: ExponentialFamily
    n_clusters: int

    def __post_init__(self) -> None:
        if not isinstance(self.n_clusters, int) or self.n_clusters < 2:
            raise ConfigurationError(
                f"LatentMixture: n_clusters must be an integer ≥ 2, got {self.n_clusters!r}; "
                "with one cluster there is nothing to cluster",
                offending=self.n_clusters,
            )

    @property
    def clusters(self) -> Categorical:
        """The cluster family `Categorical(K)`."""
        return Categorical(self.n_clusters)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the named parameters."""
        shape = self.latent.param_shape
        return {"b_y": shape, "W_yk": (*shape, self.n_clusters - 1), "b_k": (self.n_clusters - 1,)}

    def zeros(self) -> MixtureParams:
        """All-zero parameters (a valid point only if the latent's θ = 0 is)."""
        return {name: jnp.zeros(shape) for name, shape in self.param_shapes().items()}

    # ---------------------------------------------------------------- structure
    def cluster_params(self, params: MixtureParams) -> Array:
        """Latent natural parameters of every cluster, `θ_k = b_y + W_yk e_k`: shape `(K,) + param_shape`."""
        weights = jnp.moveaxis(full_logits(params["W_yk"]), -1, 0)
        return params["b_y"][None] + weights

    def cluster_logits(self, params: MixtureParams) -> Array:
        """Unnormalised `log p(k) = b_k·e_k + ψ_Y(θ_k)`, shape `(K,)`."""
        psi = jax.vmap(self.latent.log_partition)(self.cluster_params(params))
        return full_logits(params["b_k"]) + psi

    def log_partition(self, params: MixtureParams) -> Array:
        r"""`ψ_Z = logsumexp_k [ψ_Y(b_y + W_yk e_k) + b_k·e_k]`."""
        return jax.nn.logsumexp(self.cluster_logits(params))

    def cluster_log_probabilities(self, params: MixtureParams) -> Array:
        """`log p(k)` for `k = 0..K−1`."""
        return jax.nn.log_softmax(self.cluster_logits(params))

    def cluster_probabilities(self, params: MixtureParams) -> Array:
        """The cluster marginal `p(k)`."""
        return jax.nn.softmax(self.cluster_logits(params))

    def conditional_params(self, params: MixtureParams, k: Array) -> Array:
        """Natural parameters of `p(y | k)`: `b_y + W_yk e_k`."""
        return self.cluster_params(params)[k]

    def means(self, params: MixtureParams) -> MixtureParams:
        """Mean statistics `E[s_Z] = ∇ψ_Z`, a pytree like `params`."""
        return jax.grad(self.log_partition)(params)

    # -------------------------------------------------------------- statistics
    def sufficient_statistic(self, y: Array, k: Array) -> MixtureParams:
        """`s_Z(y, k) = (s_Y(y), s_Y(y) ⊗ e_k, e_k)` as a named pytree."""
        stats_y = self.latent.sufficient_statistic(y)
        e_k = self.clusters.sufficient_statistic(k)
        return {"b_y": stats_y, "W_yk": stats_y[..., None] * e_k, "b_k": e_k}

    def log_density(self, params: MixtureParams, y: Array, k: Array) -> Array:
        r"""`log p(y, k) = θ_Z·s_Z(y, k) + log h_Y(y) − ψ_Z(θ_Z)`."""
        stats = self.sufficient_statistic(y, k)
        return tree_vdot(params, stats) + self.latent.log_base_measure(y) - self.log_partition(params)

    def kl_divergence(self, params: MixtureParams, other: MixtureParams) -> Array:
        r"""`KL(θ₁‖θ₂) = ψ_Z(θ₂) − ψ_Z(θ₁) − ∇ψ_Z(θ₁)·(θ₂ − θ₁)`."""
        difference = jax.tree.map(jnp.subtract, other, params)
        return self.log_partition(other) - self.log_partition(params) - tree_vdot(self.means(params), difference)

    def cluster_entropy(self, params: MixtureParams) -> Array:
        """Entropy of the cluster marginal, `H(p(k)) = −Σ_k p(k) log p(k)`."""
        log_p = self.cluster_log_probabilities(params)
        return -jnp.sum(jnp.exp(log_p) * log_p)

    def sample(self, key: Array, params: MixtureParams, shape: tuple[int, ...] = ()) -> tuple[Array, Array]:
        """Draw `k ~ p(k)` then `y ~ p(y | k)`; returns `(y, k)` with leading `shape`."""
        key_k, key_y = jax.random.split(key)
        k = sample_categorical(key_k, self.cluster_logits(params), shape)
        theta_y = self.cluster_params(params)[k]
        return self.latent.sample(key_y, theta_y, shape), k
