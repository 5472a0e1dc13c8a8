r"""The variational conjugated mixture harmonium (docs/model.md).

$$
\theta_X(z) = a + \sum_b L_b(z),\qquad
\eta_q(x) = \theta_Z - \tilde\rho + \sum_b L_b^\top(s_X(x)),
$$

$$
r(z) = \tilde\rho\cdot s_Z(z) - \psi_X(\theta_X(z)) + \psi_X(a),\qquad
c(x) = s_X(x)\cdot a + \psi_Z(\eta_q(x)) - \psi_Z(\theta_Z) - \psi_X(a) + \log h_X(x),
$$

$$
\log p(x, z) - \log q(z\mid x) = c(x) + r(z),\qquad
\mathrm{ELBO}(x) = c(x) + E_q[r(Z)] \le \log p(x).
$$

Parameters are the named pytree:

```text
{"prior": {"b_y", "W_yk", "b_k"},
 "likelihood": {"a", "blocks": {block name: array}},
 "rho_y": (n,)}
```

Methods on observations take a batch `x` of shape `(B,) + data_shape` and refuse
any other shape with a [`ShapeError`][expfam.errors.ShapeError] (one observation: `x[None]`;
[`expfam.experiment.load_run`][expfam.experiment.runs.trained.load_run]'s helpers accept one observation or images too).
Methods on sampled states take `y` `(S, n)` and `k` `(S,)`; blocks see
the latent statistics `s_Y(y)`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, final

import jax
import jax.numpy as jnp
import numpy as np

from expfam import posterior as batched
from expfam.affine import cluster_affine_sorted
from expfam.block import ClusterAffine, InteractionBlock, check_block_params
from expfam.errors import ShapeError
from expfam.families.categorical import full_logits
from expfam.family import Array, ExponentialFamily
from expfam.mixture import LatentMixture, MixtureParams, tree_vdot
from expfam.posterior import Posterior
from expfam.shapes import check_batch

__all__ = ["Harmonium", "Params", "Posterior"]

Params = dict[str, Any]


@final
@jax.tree_util.register_static
@dataclass(frozen=True)
class Harmonium:
    """An observable family coupled to a latent mixture through interaction blocks."""

    observable: ExponentialFamily
    mixture: LatentMixture
    blocks: tuple[InteractionBlock, ...]

    @property
    def latent(self) -> ExponentialFamily:
        """The base latent family `Y`."""
        return self.mixture.latent

    @property
    def n_clusters(self) -> int:
        """`K`."""
        return self.mixture.n_clusters

    @property
    def block_names(self) -> tuple[str, ...]:
        """Registry names of the blocks, in order."""
        return tuple(block.name for block in self.blocks)

    # ------------------------------------------------------------ parameters
    def init(self, key: Array, data: Array | None = None) -> Params:
        r"""Initial parameters (docs/model.md, "Parameters").

        `a` = the observable fit to `data` with means shrunk 1% toward the
        reference plus `N(0, 0.1²)`; `b_y, b_k ~ N(0, 0.1²)`;
        `W_yk ~ N(0, 0.5²)`; blocks by their own rule; `ρ_y = 0`.
        """
        keys = jax.random.split(key, 4 + len(self.blocks))
        shapes = self.mixture.param_shapes()
        prior = {
            "b_y": 0.1 * jax.random.normal(keys[0], shapes["b_y"]),
            "W_yk": 0.5 * jax.random.normal(keys[1], shapes["W_yk"]),
            "b_k": 0.1 * jax.random.normal(keys[2], shapes["b_k"]),
        }
        bias = self.observable.initialize(keys[3], data=data)
        blocks = {block.name: block.init(block_key) for block, block_key in zip(self.blocks, keys[4:], strict=True)}
        for block in self.blocks:  # one array per block (InteractionBlock); else name the block and the fix
            if not hasattr(blocks[block.name], "shape"):
                check_block_params(block)
        return {
            "prior": prior,
            "likelihood": {"a": bias, "blocks": blocks},
            "rho_y": jnp.zeros(shapes["b_y"]),
        }

    # ------------------------------------------------------------ likelihood
    def observable_params(self, params: Params, y: Array, k: Array) -> Array:
        """`θ_X(z_s) = a + Σ_b L_b(z_s)` at sampled states; shape `(S,) + param_shape`."""
        likelihood = params["likelihood"]
        stats_y = jax.vmap(self.latent.sufficient_statistic)(y)
        offset = jnp.asarray(sum(block.offset(likelihood["blocks"][block.name], stats_y, k) for block in self.blocks))
        bias = jnp.broadcast_to(likelihood["a"], (y.shape[0], *self.observable.param_shape))
        return self.observable.add_offset(bias, offset)

    def observable_params_at_statistics(self, params: Params, statistics: MixtureParams) -> Array:
        """`a + Σ_b L_b(s)` for one set of latent statistics (e.g. posterior means)."""
        likelihood = params["likelihood"]
        offset = jnp.asarray(
            sum(block.offset_from_statistics(likelihood["blocks"][block.name], statistics) for block in self.blocks)
        )
        return self.observable.add_offset(likelihood["a"], offset)

    def observable_log_partition(self, params: Params, y: Array, k: Array) -> Array:
        r"""`ψ_X(θ_X(z_s))` per sample, shape `(S,)`.

        When every block is affine in `s_Y(y)` within each cluster and one of them has per-cluster matrices
        (the `full` block set), the offsets are one grouped product `(W + V_k) s_Y(y) + u_k` over the states
        sorted by cluster ([`expfam.affine.cluster_affine_sorted`][expfam.affine.cluster_affine_sorted]);
        `ψ_X` reduces each sorted row and only the `(S,)` result is put back in order. Otherwise each block
        adds its own offset.
        """
        affine = self._grouped_affine(params)
        if affine is None:
            return jax.vmap(self.observable.log_partition)(self.observable_params(params, y, k))
        shared, per_cluster, bias = affine
        order = jnp.argsort(k, stable=True)
        stats_y = jax.vmap(self.latent.sufficient_statistic)(y[order])
        offset = cluster_affine_sorted(shared, per_cluster, bias, stats_y, k[order])
        theta = self.observable.add_offset(
            jnp.broadcast_to(params["likelihood"]["a"], (y.shape[0], *self.observable.param_shape)), offset
        )
        psi_sorted = jax.vmap(self.observable.log_partition)(theta)
        return jnp.zeros_like(psi_sorted).at[order].set(psi_sorted, unique_indices=True)

    def _grouped_affine(self, params: Params) -> tuple[Array, Array, Array] | None:
        """`_cluster_affine` where [`observable_log_partition`][expfam.model.Harmonium.observable_log_partition] uses the grouped product (vector latents)."""
        return self._cluster_affine(params) if len(self.latent.param_shape) == 1 else None

    def _cluster_affine(self, params: Params) -> tuple[Array, Array, Array] | None:
        """`(W, V, u)` summed over the blocks' [`ClusterAffine`][expfam.block.ClusterAffine] forms, or `None`.

        `None` when a block has no such form or when none has per-cluster matrices (then the
        blocks' own offsets, a dense product and a one-hot product, are the cheaper way).
        """
        forms: list[ClusterAffine] = []
        for block in self.blocks:
            form = block.cluster_affine(params["likelihood"]["blocks"][block.name])
            if form is None:
                return None
            forms.append(form)
        matrices = [form.per_cluster for form in forms if form.per_cluster is not None]
        if not matrices:
            return None
        per_cluster = functools.reduce(jnp.add, matrices)
        km1, d, n = per_cluster.shape
        shared_parts = [form.shared for form in forms if form.shared is not None]
        bias_parts = [form.bias for form in forms if form.bias is not None]
        shared = functools.reduce(jnp.add, shared_parts) if shared_parts else jnp.zeros((d, n), per_cluster.dtype)
        bias = functools.reduce(jnp.add, bias_parts) if bias_parts else jnp.zeros((km1, d), per_cluster.dtype)
        return shared, per_cluster, bias

    # ------------------------------------------------------------ conjugation
    def cluster_correction(self, params: Params) -> Array:
        r"""`ρ_k[j] = ψ_X(θ_X(y=0, k=j)) − ψ_X(a)` for `j = 1..K−1` (computed, not learned)."""
        clusters = jnp.arange(1, self.n_clusters)
        y = jnp.zeros((self.n_clusters - 1, *self.latent.param_shape))
        with jax.ensure_compile_time_eval():  # a static fact about the family: is s_Y(0) = 0?
            zero = jnp.zeros(self.latent.param_shape, jnp.float32)
            latent_zero = not np.any(np.asarray(self.latent.sufficient_statistic(zero)))
        blocks = [block for block in self.blocks if not (latent_zero and block.vanishes_at_zero_latent)]
        bias = params["likelihood"]["a"]
        theta = jnp.broadcast_to(bias, (self.n_clusters - 1, *self.observable.param_shape))
        if blocks:
            stats_y = jax.vmap(self.latent.sufficient_statistic)(y)
            offsets = [block.offset(params["likelihood"]["blocks"][block.name], stats_y, clusters) for block in blocks]
            theta = self.observable.add_offset(theta, functools.reduce(jnp.add, offsets))
        psi = jax.vmap(self.observable.log_partition)(theta)
        return psi - self.observable.log_partition(bias)

    def correction(self, params: Params) -> MixtureParams:
        """The conjugation correction in prior coordinates, `ρ̃ = (ρ_y, 0, ρ_k)`."""
        return {
            "b_y": params["rho_y"],
            "W_yk": jnp.zeros_like(params["prior"]["W_yk"]),
            "b_k": self.cluster_correction(params),
        }

    def residual(self, params: Params, y: Array, k: Array) -> Array:
        r"""`r(z) = ρ̃·s_Z(z) − ψ_X(θ_X(z)) + ψ_X(a)` per sampled state, shape `(S,)`."""
        stats_y = jax.vmap(self.latent.sufficient_statistic)(y)
        rho_k = full_logits(self.cluster_correction(params))
        linear = jnp.sum(stats_y * params["rho_y"], axis=tuple(range(1, stats_y.ndim))) + rho_k[k]
        psi_a = self.observable.log_partition(params["likelihood"]["a"])
        return linear - self.observable_log_partition(params, y, k) + psi_a

    def residual_sets(self, params: Params, states: list[tuple[Array, Array]]) -> list[Array]:
        r"""`r(z)` at several sets of states `(y_i, k_i)`, each of any leading shape `L_i`.

        With per-cluster matrices (the `full` block set) the sets are joined and evaluated in one
        [`residual`][expfam.model.Harmonium.residual] call: one grouped product, whose per-cluster work
        (forming each `M_k`, a partly filled last piece per cluster, `∂V`) is then paid once, not once per
        set. Otherwise each set is its own call: with dense offsets joining saves no work
        (docs/benchmarks-history.md). The values are the same either way; each result has shape `L_i`.
        """
        event = len(self.latent.param_shape)
        flat = [(y.reshape((-1, *y.shape[y.ndim - event :])), k.reshape(-1)) for y, k in states]
        if len(flat) < 2 or self._grouped_affine(params) is None:
            return [
                self.residual(params, y, k).reshape(given.shape)
                for (y, k), (_, given) in zip(flat, states, strict=True)
            ]
        y = jnp.concatenate([y for y, _ in flat])
        k = jnp.concatenate([k.astype(jnp.int32) for _, k in flat])
        bounds = np.cumsum([k.size for _, k in flat])[:-1]
        pieces = jnp.split(self.residual(params, y, k), bounds)
        return [piece.reshape(given.shape) for piece, (_, given) in zip(pieces, states, strict=True)]

    # ------------------------------------------------------------- posterior
    def posterior_params(self, params: Params, x: Array) -> MixtureParams:
        r"""`η_q(x) = θ_Z − ρ̃ + Σ_b L_bᵀ(s_X(x))` for a batch `x` `(B,) + data_shape`.

        Returns mixture parameters whose leaves carry a leading batch axis.

        Raises:
            ShapeError: `x` is not a batch of observations (e.g. one unbatched image).
        """
        return self._posterior_params(params, x)[0]

    def posterior(self, params: Params, x: Array) -> Posterior:
        r"""`η_q(x)` with its cluster parameters, logits, `ψ_Z(η_q)` and `q(k | x)`: a [`Posterior`][expfam.posterior.Posterior].

        One pass ([`expfam.posterior.summarise`][expfam.posterior.summarise]); when no block updates `W_yk` (the
        hierarchical model) it also carries the one `W_yk` of the batch. A training step computes it once for
        all its loss terms ([`expfam.objective.StepContext`][expfam.objective.StepContext]).

        Raises:
            ShapeError: `x` is not a batch of observations (e.g. one unbatched image).
        """
        natural, shared_w_yk = self._posterior_params(params, x)
        return batched.summarise(self.latent, natural, shared_w_yk)

    def _posterior_params(self, params: Params, x: Array) -> tuple[MixtureParams, Array | None]:
        """`η_q(x)`, and its `W_yk` before the batch broadcast when no block updates it (else `None`)."""
        check_batch(self.observable, x)
        stats = jax.vmap(self.observable.sufficient_statistic)(x)
        statistic = self.observable.coupled_statistic(stats)
        base = jax.tree.map(jnp.subtract, params["prior"], self.correction(params))
        posterior = {name: jnp.broadcast_to(value, (x.shape[0], *value.shape)) for name, value in base.items()}
        updated: set[str] = set()
        for block in self.blocks:
            update = block.adjoint(params["likelihood"]["blocks"][block.name], statistic)
            for name, value in update.items():
                posterior[name] = posterior[name] + value
                updated.add(name)
        return posterior, (None if "W_yk" in updated else base["W_yk"])

    def cluster_responsibilities(self, params: Params, x: Array) -> Array:
        """`q(k | x)`, the cluster marginal of `η_q(x)`, shape `(B, K)`."""
        return self.posterior(params, x).responsibilities

    def assign(self, params: Params, x: Array) -> Array:
        """Cluster assignments `argmax_k q(k | x)`, shape `(B,)`."""
        return jnp.argmax(self.cluster_responsibilities(params, x), axis=-1)

    def baseline(self, params: Params, x: Array, posterior: Posterior | None = None) -> Array:
        r"""`c(x) = s_X(x)·a + ψ_Z(η_q(x)) − ψ_Z(θ_Z) − ψ_X(a) + log h_X(x)`, `(B,)`; pass `posterior` if already computed."""
        if posterior is None:
            posterior = self.posterior(params, x)
        check_batch(self.observable, x)
        bias = params["likelihood"]["a"]
        stats = jax.vmap(self.observable.sufficient_statistic)(x)
        return (
            jnp.sum(stats * bias, axis=tuple(range(1, stats.ndim)))
            + posterior.log_partition
            - self.mixture.log_partition(params["prior"])
            - self.observable.log_partition(bias)
            + jax.vmap(self.observable.log_base_measure)(x)
        )

    def posterior_kl(self, params: Params, x: Array, posterior: Posterior | None = None) -> Array:
        r"""`KL(q(z | x) ‖ p(z))` in closed form, shape `(B,)` ([`expfam.posterior.prior_kl`][expfam.posterior.prior_kl])."""
        if posterior is None:
            posterior = self.posterior(params, x)
        return batched.prior_kl(self.mixture, params["prior"], posterior)

    # ------------------------------------------------------------- densities
    def log_joint(self, params: Params, x: Array, y: Array, k: Array) -> Array:
        """`log p(x, z_s)` for one observation `x` (of `data_shape`) and sampled states `(S,)`."""
        if tuple(jnp.shape(x)) != tuple(self.observable.data_shape):
            raise ShapeError(
                f"Harmonium.log_joint takes one observation of shape {self.observable.data_shape}, got "
                f"{tuple(jnp.shape(x))}; vmap it over a batch",
                offending=tuple(jnp.shape(x)),
            )
        stats = self.observable.sufficient_statistic(x)
        theta = self.observable_params(params, y, k)
        log_likelihood = (
            jnp.sum(theta * stats, axis=tuple(range(1, theta.ndim)))
            - jax.vmap(self.observable.log_partition)(theta)
            + self.observable.log_base_measure(x)
        )
        log_prior = jax.vmap(self.mixture.log_density, in_axes=(None, 0, 0))(params["prior"], y, k)
        return log_likelihood + log_prior

    def posterior_log_density(self, posterior: MixtureParams, y: Array, k: Array) -> Array:
        """`log q(z_s | x) = η_q·s_Z(z_s) + log h_Y(y_s) − ψ_Z(η_q)` for one posterior, states `(S,)`."""
        theta_k = self.mixture.cluster_params(posterior)[k]
        stats_y = jax.vmap(self.latent.sufficient_statistic)(y)
        logits = full_logits(posterior["b_k"])
        base = jax.vmap(self.latent.log_base_measure)(y)
        inner = jnp.sum(theta_k * stats_y, axis=tuple(range(1, stats_y.ndim)))
        return inner + logits[k] + base - self.mixture.log_partition(posterior)

    def sample_posterior(self, key: Array, posterior: Posterior, n_samples: int) -> tuple[Array, Array]:
        """`n_samples` states per observation, `(B, S, n)` and `(B, S)`: `k ~ q(k|x)`, then `y ~ q(y | k, x)`, one key."""
        return batched.sample(self.latent, key, posterior, n_samples)

    def sample_prior(self, key: Array, params: Params, n_samples: int) -> tuple[Array, Array]:
        """`n_samples` states `(y, k) ~ p(z)`."""
        return self.mixture.sample(key, params["prior"], (n_samples,))

    def sample(self, key: Array, params: Params, n_samples: int) -> tuple[Array, Array, Array]:
        """Generative samples `(x, y, k)`: `z ~ p(z)`, then `x ~ p(x | z)`."""
        key_z, key_x = jax.random.split(key)
        y, k = self.sample_prior(key_z, params, n_samples)
        theta = self.observable_params(params, y, k)
        keys = jax.random.split(key_x, n_samples)
        x = jax.vmap(self.observable.sample)(keys, theta)
        return x, y, k

    def batch_residual(self, params: Params, y: Array, k: Array) -> Array:
        """`r` at states with a leading batch axis, `y` `(B, S, n)`, `k` `(B, S)` → `(B, S)`.

        The states are flattened to one `(B·S)` call so that blocks group
        samples by cluster across the whole batch.
        """
        batch, n_samples = k.shape
        flat_y = y.reshape((batch * n_samples, *y.shape[2:]))
        return self.residual(params, flat_y, k.reshape(-1)).reshape(batch, n_samples)

    # --------------------------------------------------------------- bounds
    def elbo_terms(
        self, key: Array, params: Params, x: Array, n_samples: int, posterior: Posterior | None = None
    ) -> tuple[Array, Array]:
        r"""Score-function surrogate and Monte-Carlo ELBO for a batch (docs/model.md).

        `S = n_samples` stop-gradient states `z_s ~ q(·|x)`, `r(z_s)` at them, and the estimator of
        [`expfam.posterior.score_function_elbo`][expfam.posterior.score_function_elbo]: the surrogate's value is
        the Monte-Carlo ELBO `c(x) + mean_s r(z_s)`, its gradient the unbiased score-function estimator.

        Returns:
            `(surrogate, elbo)`, each of shape `(B,)`. Pass `posterior`
            ([`posterior`][expfam.model.Harmonium.posterior]) when the caller already has it.
        """
        if posterior is None:
            posterior = self.posterior(params, x)
        y, k = self.posterior_states(key, posterior, n_samples)
        return self.elbo_from_residual(params, x, posterior, y, k, self.batch_residual(params, y, k))

    def posterior_states(self, key: Array, posterior: Posterior, n_samples: int) -> tuple[Array, Array]:
        """Stop-gradient states `z_s ~ q(·|x)` for [`elbo_from_residual`][expfam.model.Harmonium.elbo_from_residual]: `(B, S, n)`, `(B, S)`."""
        states: tuple[Array, Array] = jax.lax.stop_gradient(
            self.sample_posterior(key, jax.lax.stop_gradient(posterior), n_samples)
        )
        return states

    def elbo_from_residual(
        self, params: Params, x: Array, posterior: Posterior, y: Array, k: Array, r: Array
    ) -> tuple[Array, Array]:
        r"""[`elbo_terms`][expfam.model.Harmonium.elbo_terms] given the residuals `r = r(z_s)` `(B, S)` at states `z_s` from [`posterior_states`][expfam.model.Harmonium.posterior_states].

        The split lets a caller evaluate `r` at these states together with other states in one call
        ([`expfam.objective.make_weighted_loss`][expfam.objective.make_weighted_loss]).
        """
        log_q = batched.log_density(self.latent, posterior, y, k)
        return batched.score_function_elbo(self.baseline(params, x, posterior), log_q, r)

    def iwae_bound(self, key: Array, params: Params, x: Array, n_samples: int) -> Array:
        r"""Importance-weighted bound `c(x) + log mean_s exp r(z_s)`, `z_s ~ q(·|x)`, shape `(B,)`."""
        posterior = self.posterior(params, x)
        y, k = self.sample_posterior(key, posterior, n_samples)
        r = self.batch_residual(params, y, k)
        return self.baseline(params, x, posterior) + jax.nn.logsumexp(r, axis=1) - jnp.log(n_samples)

    # --------------------------------------------------------- reconstruction
    def reconstruct(self, params: Params, x: Array) -> Array:
        r"""`x̂ = ∇ψ_X(θ_X(E_q[s_Z]))` (coupled part): the observable mean at the posterior mean statistics."""
        posterior = self.posterior_params(params, x)
        means = jax.vmap(self.mixture.means)(posterior)
        theta = jax.vmap(self.observable_params_at_statistics, in_axes=(None, 0))(params, means)
        return self.observable.coupled_statistic(jax.vmap(self.observable.means)(theta))

    # ----------------------------------------------------- conjugation checks
    def prior_residual_variance(self, key: Array, params: Params, n_samples: int) -> Array:
        r"""`Var_{z~p}[r(z)]` over `n_samples` stop-gradient prior samples."""
        y, k = jax.lax.stop_gradient(self.sample_prior(key, params, n_samples))
        return jnp.var(self.residual(params, y, k))

    def fit_correction(
        self, key: Array, params: Params, n_samples: int, *, ridge: float = 1e-6
    ) -> tuple[Array, Array, Array]:
        r"""Least-squares `ρ_y` (docs/model.md).

        Regress `ψ_X(θ_X(z_m)) − ρ_k·e_{k_m}` on `[1, s_Y(y_m)]` over prior
        samples; the coefficients are `(χ, ρ_y)` and the fitted residual
        variance is `min_{ρ_y} Var_p[r]`. With centred statistics `X` and
        target `t`, `(XᵀX/M + ridge·I) ρ_y = Xᵀt/M` is solved by Cholesky and
        `χ = mean t − mean s_Y·ρ_y`; the tiny ridge
        keeps the solve defined when a latent unit is (nearly) constant under
        the prior, where the plain minimiser is not unique.

        Returns:
            `(chi, rho_y, residual_variance)`.
        """
        y, k = jax.lax.stop_gradient(self.sample_prior(key, params, n_samples))
        stats_y = jax.vmap(self.latent.sufficient_statistic)(y).reshape(n_samples, -1)
        rho_k = full_logits(self.cluster_correction(params))
        target = self.observable_log_partition(params, y, k) - rho_k[k]
        centred_stats = stats_y - jnp.mean(stats_y, axis=0)
        centred_target = target - jnp.mean(target)
        gram = centred_stats.T @ centred_stats / n_samples + ridge * jnp.eye(stats_y.shape[1])
        rho_y = jax.scipy.linalg.solve(gram, centred_stats.T @ centred_target / n_samples, assume_a="pos")
        chi = jnp.mean(target) - jnp.mean(stats_y, axis=0) @ rho_y
        residual_variance = jnp.var(centred_target - centred_stats @ rho_y)
        return chi, rho_y.reshape(self.latent.param_shape), residual_variance

    def r_squared(self, key: Array, params: Params, n_samples: int = 10_000) -> Array:
        r"""`R² = 1 − Var_p[r] / Var_p[ψ_X(θ_X(z))]`; NaN if the denominator < 1e-6; clipped to [−10, 1]."""
        y, k = self.sample_prior(key, params, n_samples)
        psi = self.observable_log_partition(params, y, k)
        denominator = jnp.var(psi)
        value = 1.0 - jnp.var(self.residual(params, y, k)) / jnp.maximum(denominator, 1e-30)
        return jnp.where(denominator < 1e-6, jnp.nan, jnp.clip(value, -10.0, 1.0))

    def correction_norm(self, params: Params) -> Array:
        """`‖ρ̃‖`, the Euclidean norm of the conjugation correction."""
        return jnp.sqrt(tree_vdot(self.correction(params), self.correction(params)))
