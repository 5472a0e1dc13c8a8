r"""The `rao_blackwell_elbo` term: the ELBO with the cluster summed out of the estimator.

Write `q(y, k | x) = q(y | x)·q(k | y, x)` with the cluster-marginal

$$
\log q(y\mid x) = \operatorname{logsumexp}_k\big[\log q(k\mid x) + \log q(y\mid k, x)\big],
\qquad q(k\mid y, x) = \exp\big(\log q(y, k\mid x) - \log q(y\mid x)\big),
$$

and `g(y) = Σ_k q(k | y, x)·r(y, k)`, the exact conditional expectation of the
residual given `y`. Then `E_q[r(Z)] = E_{q(y|x)}[g(Y)]` and, with `y_s ~ q(y|x)`
(stop-gradient, drawn as `k ~ q(k|x)`, `y ~ q(y|k,x)` and dropping `k`) and
`ḡ = mean(sg(g_s))`, the surrogate

$$
c(x) + \operatorname{mean}_s g(y_s)
  + \sum_s \frac{(\mathrm{sg}(g_s) - \bar g)\,\log q(y_s\mid x)}{S-1} - \mathrm{sg}(\cdot)
$$

has the value of an unbiased ELBO estimate and an unbiased gradient
(leave-one-out baseline, as in `elbo`). Its score term uses
`∇log q(y|x) = E_{q(k|y,x)}[∇log q(y, k|x)]`, the conditional expectation of the
plain score given `y`, so its variance is never larger (Rao–Blackwellisation over k).

Cost. When no block's offset depends on the cluster (the hierarchical set, `{xy}`),
`ρ_k = 0` and `r(y, k) = r(y)`: then `g(y_s) = r(y_s)` is evaluated once per
sample, as in `elbo`, and the only extra work is the `S × K` table of
`log q(y_s, k | x)`. Otherwise (`full`, `{xy, xk}`, ...) `g` is the exact sum
over the `K` clusters, so `r` is evaluated at `S·K` states per observation:
`K` times the residual work of `elbo` (measured in `examples/experiments/gradient_variance.py`).

The KL warmup part `(1 − β)·KL(q(z|x) ‖ p(z))` is added in closed form as in `elbo`;
the reported value is the batch mean of `c(x) + mean_s g(y_s)` (β = 1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, final

import jax
import jax.numpy as jnp

from expfam.block import InteractionBlock
from expfam.families.categorical import full_logits
from expfam.family import Array
from expfam.mixture import MixtureParams
from expfam.model import Harmonium, Params
from expfam.objective import Objective, States, StepContext, with_kl_warmup
from expfam.posterior import Posterior

#: Latent-statistic slots of the posterior that carry the cluster.
CLUSTER_SLOTS: frozenset[str] = frozenset({"W_yk", "b_k"})


def _adjoint_of_zeros(block: InteractionBlock) -> Any:
    """`L_bᵀ(0)` at `params = 0`: only its keys and shapes are read (under `jax.eval_shape`)."""
    return block.adjoint(jnp.zeros(block.param_shape()), jnp.zeros((1, block.observable_size)))


def residual_depends_on_cluster(model: Harmonium) -> bool:
    r"""Whether `r(y, k)` can depend on `k`: some block's adjoint writes a cluster slot.

    By adjointness `s·L_b(z) = L_bᵀ(s)·s_Z(z)`, `L_b(z)` depends on `k` exactly
    when `L_bᵀ(s)` has a `W_yk` or `b_k` entry; without such a block `θ_X(z)`
    and `ρ_k` (hence `r`) do not depend on `k`. Decided from shapes only
    (`jax.eval_shape`), once per model, outside `jit`.
    """
    for block in model.blocks:
        touched = jax.eval_shape(functools.partial(_adjoint_of_zeros, block))
        if CLUSTER_SLOTS & set(touched):
            return True
    return False


def joint_log_density_table(model: Harmonium, posterior: MixtureParams, y: Array) -> Array:
    r"""`log q(y_s, k | x)` for every sample and every cluster, shape `(S, K)`.

    `log q(y, k|x) = θ_k·s_Y(y) + b_k·e_k + log h_Y(y) − ψ_Z(η_q(x))` with
    `θ_k = b_y + W_yk e_k` the posterior's cluster parameters; one posterior, states `(S, n)`.
    """
    n_samples = y.shape[0]
    theta = model.mixture.cluster_params(posterior).reshape(model.n_clusters, -1)
    stats_y = jax.vmap(model.latent.sufficient_statistic)(y).reshape(n_samples, -1)
    base = jax.vmap(model.latent.log_base_measure)(y)
    logits = full_logits(posterior["b_k"])
    return stats_y @ theta.T + logits + base[:, None] - model.mixture.log_partition(posterior)


def cluster_marginal_residual(
    model: Harmonium, params: Params, y: Array, k: Array, table: Array, *, depends_on_cluster: bool
) -> Array:
    r"""`g(y_s) = Σ_k q(k | y_s, x)·r(y_s, k)` at states with a batch axis: `y` `(B, S, n)` → `(B, S)`.

    `table` is `log q(y_s, k | x)` `(B, S, K)`. Without cluster-dependent blocks
    `g(y_s) = r(y_s, k_s)` (any `k_s`); otherwise `r` is evaluated at all
    `B·S·K` states and averaged under `q(k | y_s, x) = softmax_k(table)`
    (differentiable in the parameters).
    """
    if not depends_on_cluster:
        return model.batch_residual(params, y, k)
    batch, n_samples, n_clusters = table.shape
    every_y = jnp.broadcast_to(y[:, :, None], (batch, n_samples, n_clusters, *y.shape[2:]))
    every_k = jnp.broadcast_to(jnp.arange(n_clusters), (batch, n_samples, n_clusters))
    flat_y = every_y.reshape((batch, n_samples * n_clusters, *y.shape[2:]))
    residual = model.batch_residual(params, flat_y, every_k.reshape(batch, -1)).reshape(table.shape)
    return jnp.sum(jax.nn.softmax(table, axis=-1) * residual, axis=-1)


def rao_blackwell_elbo_terms(
    model: Harmonium,
    key: Array,
    params: Params,
    x: Array,
    n_samples: int,
    posterior: Posterior | None = None,
) -> tuple[Array, Array]:
    r"""Surrogate and ELBO estimate with the cluster summed out (module docstring).

    `surrogate = c(x) + mean_s g_s + Σ_s (sg(g_s) − ḡ)·log q(y_s|x) / (S − 1) − sg(same)`,
    with `g_s = Σ_k q(k|y_s,x) r(y_s,k)` and `log q(y|x) = logsumexp_k log q(y,k|x)`.

    Returns:
        `(surrogate, elbo)`, each of shape `(B,)`; the gradient of the surrogate
        is an unbiased estimate of `∇ELBO(x)`. Pass `posterior`
        ([`Harmonium.posterior`][expfam.model.Harmonium.posterior]) when the caller already has it.
    """
    if posterior is None:
        posterior = model.posterior(params, x)
    y, k = jax.lax.stop_gradient(model.sample_posterior(key, jax.lax.stop_gradient(posterior), n_samples))
    table = jax.vmap(joint_log_density_table, in_axes=(None, 0, 0))(model, posterior.params, y)
    log_q_y = jax.nn.logsumexp(table, axis=-1)
    g = cluster_marginal_residual(model, params, y, k, table, depends_on_cluster=residual_depends_on_cluster(model))
    control = jnp.mean(g, axis=1, keepdims=True) if n_samples > 1 else jnp.zeros_like(g)
    centred = jax.lax.stop_gradient(g - control)
    score = jnp.sum(centred * log_q_y, axis=1) / max(n_samples - 1, 1)
    elbo = model.baseline(params, x, posterior) + jnp.mean(g, axis=1)
    return elbo + score - jax.lax.stop_gradient(score), elbo


@final
@dataclass(frozen=True)
class RaoBlackwellElbo(Objective):
    r"""Negative β-weighted ELBO through the Rao–Blackwellised (cluster-marginal) score estimator.

    Same target as `elbo`, `−mean_batch [ELBO(x) + (1 − β)·KL(q(z|x) ‖ p(z))]`;
    a lower-variance unbiased gradient.
    """

    name: ClassVar[str] = "rao_blackwell_elbo"
    estimates_elbo: ClassVar[bool] = True

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(−mean L_β, mean ELBO)` through [`rao_blackwell_elbo_terms`][objectives.rao_blackwell.rao_blackwell_elbo_terms]."""
        surrogate, elbo = rao_blackwell_elbo_terms(
            ctx.model, key, ctx.params, ctx.x, ctx.settings.n_mc_samples, ctx.posterior
        )
        return -jnp.mean(with_kl_warmup(ctx, surrogate)), jnp.mean(elbo)
