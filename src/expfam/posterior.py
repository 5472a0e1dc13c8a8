r"""Batched posterior quantities of the latent mixture, computed once per step (docs/model.md).

For a batch of posterior parameters `η_q = (b_y, W_yk, b_k)` (leaves with a
leading batch axis `B`) every loss term needs the cluster logits

$$
\ell_k = b_k\cdot e_k + \psi_Y(\theta_k),\qquad \theta_0 = b_y,\quad
\theta_k = b_y + W_{yk} e_k\ (k \ge 1),\qquad
\psi_Z = \operatorname{logsumexp}_k \ell_k,\qquad q(k\mid x) = e^{\ell_k - \psi_Z}.
$$

The cluster parameters are kept in `W_yk`'s own layout, `(B,) + P + (K−1,)`
with the cluster axis last (`P` the latent's parameter shape), and the
reference cluster 0 apart, so no `(B, K, n)` transpose or concatenation is
materialised (such copies are a large part of the step; docs/benchmarks.md).

[`shared_computations`][expfam.posterior.shared_computations] makes `η_q(x)` and its summary one value per
trace for all loss terms, so their gradients flow back through it once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from expfam.family import Array, ExponentialFamily
from expfam.mixture import MixtureParams, sample_categorical

_trace_state: Callable[[], Any] | None
try:  # the trace identity keeps a shared value from leaking out of an inner vmap/scan
    from jax._src.core import get_opaque_trace_state as _trace_state
except ImportError:  # pragma: no cover - a jax without it: no sharing, same results
    _trace_state = None

_SHARED: list[dict[tuple[str, int, int], tuple[Any, Any, Any, Any]]] = []


@contextlib.contextmanager
def shared_computations() -> Iterator[None]:
    """Inside this block, `η_q(x)` and its cluster summary are computed once per `(params, x)`.

    Loss terms each call `Harmonium.posterior_params` (and the ELBO, KL and
    entropy terms all need `q(k | x)`); within one trace they then share one
    value, so the gradient flows back through the posterior once (for the full
    model that is one `D × n(K−1)` adjoint product instead of one per term).
    Entries are keyed on the identity of the arguments and on the JAX trace,
    and live only as long as the block. [`expfam.objective.make_loss`][expfam.objective.make_loss]
    opens it around the terms.
    """
    _SHARED.append({})
    try:
        yield
    finally:
        _SHARED.pop()


def memo(name: str, first: Any, second: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, reused for the same `(first, second)` objects under the same JAX trace."""
    hit = _lookup(name, first, second)
    if hit is not None:
        return hit[0]
    value = compute()
    _store(name, first, second, value)
    return value


def _lookup(name: str, first: Any, second: Any) -> tuple[Any] | None:
    """`(value,)` stored for `(name, first, second)` under the current JAX trace, else `None`."""
    if not _SHARED or _trace_state is None:
        return None
    hit = _SHARED[-1].get((name, id(first), id(second)))
    # identity, not just id: an id can be reused; a value made inside vmap/scan must not leak out
    if hit is not None and hit[0] is first and hit[1] is second and hit[2] == _trace_state():
        return (hit[3],)
    return None


def _store(name: str, first: Any, second: Any, value: Any) -> None:
    if _SHARED and _trace_state is not None:
        _SHARED[-1][(name, id(first), id(second))] = (first, second, _trace_state(), value)


def note_batch_broadcast(batched: Array, leaf: Array) -> None:
    """Record that `batched` is `leaf` broadcast over the batch axis (inside [`shared_computations`][expfam.posterior.shared_computations]).

    [`log_density`][expfam.posterior.log_density] then multiplies by `leaf` once instead of by one copy per observation.
    Outside the block nothing is recorded and every consumer reads `batched`.
    """
    _store("broadcast", batched, None, leaf)


def batch_broadcast_of(batched: Array) -> Array | None:
    """The unbatched leaf recorded by [`note_batch_broadcast`][expfam.posterior.note_batch_broadcast] for `batched`, else `None`."""
    hit = _lookup("broadcast", batched, None)
    return None if hit is None else hit[0]


class PosteriorSummary(NamedTuple):
    r"""`η_q(x)` and the cluster quantities every loss term reads.

    Attributes:
        params: `η_q(x)`, mixture parameters with a leading batch axis `B`.
        cluster_params: `θ_k = b_y + W_yk e_k` for `k ≥ 1`, shape `(B,) + P + (K−1,)`
            (cluster 0's are `params["b_y"]`).
        logits: `ℓ_k = b_k·e_k + ψ_Y(θ_k)`, shape `(B, K)`.
        log_partition: `ψ_Z(η_q) = logsumexp_k ℓ_k`, shape `(B,)`.
        responsibilities: `q(k | x) = softmax_k ℓ_k`, shape `(B, K)`.
    """

    params: MixtureParams
    cluster_params: Array
    logits: Array
    log_partition: Array
    responsibilities: Array


def _over_clusters(function: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Map a function of one latent parameter over `(B,) + P + (C,)` (cluster axis last)."""
    return jax.vmap(jax.vmap(function, in_axes=-1, out_axes=-1))


def summarise(latent: ExponentialFamily, posterior: MixtureParams) -> PosteriorSummary:
    """The [`PosteriorSummary`][expfam.posterior.PosteriorSummary] of batched posterior parameters."""
    b_y = posterior["b_y"]
    cluster_params = b_y[..., None] + posterior["W_yk"]
    psi_rest = _over_clusters(latent.log_partition)(cluster_params)  # (B, K-1)
    psi_0 = jax.vmap(latent.log_partition)(b_y)
    logits = jnp.concatenate([psi_0[:, None], psi_rest + posterior["b_k"]], axis=-1)
    log_partition = jax.nn.logsumexp(logits, axis=-1)
    responsibilities = jnp.exp(logits - log_partition[:, None])
    return PosteriorSummary(posterior, cluster_params, logits, log_partition, responsibilities)


def expected_statistics(latent: ExponentialFamily, summary: PosteriorSummary) -> MixtureParams:
    r"""Mixture means `E_q[s_Z] = (Σ_k q_k μ_k,\ q_k μ_k\ (k ≥ 1),\ q_k\ (k ≥ 1))`, `μ_k = ∇ψ_Y(θ_k)`."""
    q = summary.responsibilities
    extra = (1,) * (summary.params["b_y"].ndim - 1)
    means_0 = jax.vmap(latent.means)(summary.params["b_y"])  # (B,) + P
    means_rest = _over_clusters(latent.means)(summary.cluster_params)  # (B,) + P + (K-1,)
    weights_rest = q[:, 1:].reshape((q.shape[0], *extra, -1))
    mean_w_yk = means_rest * weights_rest
    mean_b_y = q[:, 0].reshape((q.shape[0], *extra)) * means_0 + jnp.sum(mean_w_yk, axis=-1)
    return {"b_y": mean_b_y, "W_yk": mean_w_yk, "b_k": q[:, 1:]}


def log_density(latent: ExponentialFamily, summary: PosteriorSummary, y: Array, k: Array) -> Array:
    r"""`log q(z_{bs}) = s_Y(y_{bs})·θ_{k_{bs}} + b_k·e_{k_{bs}} + log h_Y(y_{bs}) − ψ_Z`, shape `(B, S)`.

    `s_Y·θ_k = s_Y·b_y + s_Y·W_yk e_k`: the second part for every cluster is one batched product
    `(S, n)·(n, K−1)` per observation (one `(B·S, n)·(n, K−1)` product when `W_yk` is the same for every
    observation, [`note_batch_broadcast`][expfam.posterior.note_batch_broadcast]), then the sampled cluster's
    column is picked (0 for the reference), so the gradient is a product as well, not a scatter.
    """
    batch, n_samples = k.shape
    stats = jax.vmap(jax.vmap(latent.sufficient_statistic))(y).reshape(batch, n_samples, -1)
    b_y = summary.params["b_y"].reshape(batch, -1)
    shared = batch_broadcast_of(summary.params["W_yk"])
    if shared is not None:  # the same W_yk for every observation (no block updates it): one product
        products = jnp.einsum("bsn,nj->bsj", stats, shared.reshape(b_y.shape[1], -1))
    else:
        products = jnp.einsum("bsn,bnj->bsj", stats, summary.params["W_yk"].reshape(batch, b_y.shape[1], -1))
    per_cluster = products + summary.params["b_k"][:, None, :]
    index = jnp.maximum(k - 1, 0)[..., None]
    picked = jnp.where(k > 0, jnp.take_along_axis(per_cluster, index, axis=-1)[..., 0], 0.0)
    base = jax.vmap(jax.vmap(latent.log_base_measure))(y)
    return jnp.einsum("bsn,bn->bs", stats, b_y) + picked + base - summary.log_partition[:, None]


def sample(latent: ExponentialFamily, key: Array, summary: PosteriorSummary, n_samples: int) -> tuple[Array, Array]:
    """`k ~ q(k|x)` by inverse CDF, then `y ~ p(y | θ_k)`: shapes `(B, S) + data_shape` and `(B, S)`."""
    key_k, key_y = jax.random.split(key)
    batch = summary.logits.shape[0]
    k = sample_categorical(key_k, summary.logits[:, None, :], (batch, n_samples))
    extra = (1,) * (summary.params["b_y"].ndim - 1)
    index = jnp.maximum(k - 1, 0).reshape((batch, *extra, n_samples))
    rest = jnp.take_along_axis(summary.cluster_params, index, axis=-1)  # (B,) + P + (S,)
    rest = jnp.moveaxis(rest, -1, 1)  # (B, S) + P
    theta = jnp.where(k.reshape((batch, n_samples, *extra)) > 0, rest, summary.params["b_y"][:, None])
    return latent.sample(key_y, theta, (batch, n_samples)), k
