"""The harmonium's identities (MODEL.md §3–§5, §7) for every registered block and block set.

Exact identities are checked by enumerating every latent state ``z = (y, k)`` of
tiny models (D = 3, n = 2, K = 3, Binomial with 3 trials unless stated: the suite's
canonical ``tiny_shapes.ENUMERATED``) with
randomised parameters (every entry ``N(0, scale²)``, so blocks and ``ρ_y`` are far
from 0); tolerances are those of :mod:`expfam.testing.model_checks` (float64
roundoff). Monte Carlo checks accept ``|z| < 5`` (``Z_LIMIT``) with standard
errors across keys. Most tests share one model shape so that the kit's jitted
tables are compiled once per block list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from expfam.block import InteractionBlock, LatentStatistics, register_block
from expfam.builder import build_model
from expfam.model import Harmonium, Params
from expfam.plugins import get_registry
from expfam.testing import (
    check_elbo_bound,
    check_joint_identity,
    check_model,
    check_posterior_kl,
    check_posterior_normalised,
    exact_elbo,
    model_table,
    random_model_params,
    random_observations,
)
from expfam.testing._assertions import Z_LIMIT, assert_close, assert_z_scores
from tiny_shapes import ENUMERATED

REGISTRY = get_registry()
BLOCK_LISTS: list[str | tuple[str, ...]] = [
    *REGISTRY.names("block_sets"),
    *((name,) for name in REGISTRY.names("blocks")),
    ("xy", "xk"),
]


def block_id(blocks: str | Sequence[str]) -> str:
    return blocks if isinstance(blocks, str) else "+".join(blocks)


def tiny_model(
    blocks: str | Sequence[str],
    observable: str = "binomial",
    *,
    data_dim: int = ENUMERATED["data_dim"],
    n_latent: int = ENUMERATED["n_latent"],
    n_clusters: int = ENUMERATED["n_clusters"],
    **options: int,
) -> Harmonium:
    """The suite's canonical enumerated shape (`tiny_shapes.ENUMERATED`) unless a size is given."""
    if observable == "binomial":
        options = {**ENUMERATED["observable_options"], **options}
    return build_model(
        observable=observable,
        observable_options=options,
        data_dim=data_dim,
        n_latent=n_latent,
        n_clusters=n_clusters,
        blocks=blocks if isinstance(blocks, str) else list(blocks),
    )


def draw(model: Harmonium, seed: int, *, batch: int = 3, scale: float = 0.8) -> tuple[Params, jax.Array]:
    """Randomised parameters and a batch of observations in the observable's support."""
    return random_model_params(model, jax.random.key(seed), scale=scale), random_observations(
        model.observable, seed, batch
    )


# Model methods jitted once per (model, shapes), so tests sharing a model share the compilation.
@partial(jax.jit, static_argnums=0)
def monte_carlo_bounds(model: Harmonium, keys: jax.Array, params: Params, x: jax.Array) -> dict[str, jax.Array]:
    """Per key: the MC ELBO with S = 4, IWAE with S = 8, and both with S = 1 (same key), each ``(keys, B)``."""

    def one(key: jax.Array) -> dict[str, jax.Array]:
        return {
            "elbo_4": model.elbo_terms(key, params, x, 4)[1],
            "iwae_8": model.iwae_bound(key, params, x, 8),
            "elbo_1": model.elbo_terms(key, params, x, 1)[1],
            "iwae_1": model.iwae_bound(key, params, x, 1),
        }

    return jax.vmap(one)(keys)


@partial(jax.jit, static_argnums=(0, 3))
def prior_report(model: Harmonium, key: jax.Array, params: Params, n_samples: int, other: jax.Array) -> dict:
    """fit_correction, Var_p r at the fit and at ρ_y = ``other``, R², and Var_p r, Var_p ψ_X by hand (same samples)."""
    _, rho_y, variance = model.fit_correction(key, params, n_samples)
    y, k = model.sample_prior(key, params, n_samples)
    return {
        "rho_y": rho_y,
        "fitted_variance": variance,
        "at_fit": model.prior_residual_variance(key, {**params, "rho_y": rho_y}, n_samples),
        "elsewhere": model.prior_residual_variance(key, {**params, "rho_y": other}, n_samples),
        "r_squared": model.r_squared(key, params, n_samples),
        "residual_variance": jnp.var(model.residual(params, y, k)),
        "psi_variance": jnp.var(model.observable_log_partition(params, y, k)),
    }


@pytest.mark.parametrize("blocks", BLOCK_LISTS, ids=block_id)
def test_identity_kit_on_every_block_list(blocks: str | tuple[str, ...]) -> None:
    """Adjointness, offsets, log p(x,z) − log q = c + r, normalisation, ELBO ≤ log p(x), KLs.

    The Monte-Carlo ELBO's assembly (sampling, flattening the batch for the
    blocks, the surrogate) is checked once, with the full set; the blocks' part
    of it, ``r`` at sampled states, is checked for every list at every state.
    """
    model = tiny_model(blocks)
    params, x = draw(model, seed=3)
    assert check_model(model, params, x, key=jax.random.key(7), n_samples=8 if blocks == "full" else 0)


@pytest.mark.parametrize("observable", ["poisson", "normal"])
def test_joint_identity_for_other_observables(observable: str) -> None:
    """The identities hold for a count and a continuous observable (blocks couple the normal's location θ₁)."""
    model = tiny_model(("xy", "xk"), observable)
    params, x = draw(model, seed=11, scale=0.5)
    assert check_posterior_normalised(model, params, x)
    assert check_joint_identity(model, params, x)
    assert check_elbo_bound(model, params, x)
    assert check_posterior_kl(model, params, x)


@settings(max_examples=10, deadline=None)
@given(blocks=st.sampled_from(BLOCK_LISTS), seed=st.integers(0, 2**16), scale=st.floats(0.1, 2.5))
def test_joint_identity_property(blocks: str | tuple[str, ...], seed: int, scale: float) -> None:
    """log p(x,z) − log q(z|x) = c(x) + r(z) and ELBO ≤ log p(x) = ELBO + KL(q ‖ p(z|x)) over random parameters."""
    model = tiny_model(blocks)
    params, x = draw(model, seed=seed, scale=scale)
    assert check_joint_identity(model, params, x)
    assert check_elbo_bound(model, params, x)


def test_joint_identity_at_other_shapes() -> None:
    """The identities at the edges of the tiny shapes: D = 1, n = 3, K = 2, one trial."""
    model = tiny_model("full", data_dim=1, n_latent=3, n_clusters=2, n_trials=1)
    params, x = draw(model, seed=2, scale=1.0)
    assert check_joint_identity(model, params, x)
    assert check_elbo_bound(model, params, x)


def test_cluster_bias_only_model_is_conjugate() -> None:
    """{xk}: r(z) = ρ_y·y exactly, so with ρ_y = 0, Var_q r = 0, ELBO = log p(x), and the fit gives ρ_y = 0."""
    model = tiny_model(["xk"])
    params, x = draw(model, seed=5, scale=1.5)
    params = {**params, "rho_y": jnp.zeros_like(params["rho_y"])}
    table = model_table(model, params, x)
    assert_close("{xk}: r(z) = 0 at ρ_y = 0", table.residual, jnp.zeros_like(table.residual), atol=1e-12)
    assert_close("{xk}: ELBO = log p(x)", table.elbo, table.log_marginal, atol=1e-10)
    report = prior_report(model, jax.random.key(0), params, 2048, jnp.ones(2))
    assert_close("{xk}: fitted ρ_y", report["rho_y"], np.zeros(2), atol=1e-8)
    assert float(report["fitted_variance"]) < 1e-20


def test_hierarchical_model_is_not_conjugate() -> None:
    """Control for the conjugacy test: with an ``xy`` block the residual varies and ELBO < log p(x)."""
    model = tiny_model("hierarchical")
    params, x = draw(model, seed=5, scale=1.5)
    table = model_table(model, params, x)
    assert float(jnp.var(table.residual)) > 1e-3
    assert np.all(np.asarray(table.log_marginal - table.elbo) > 1e-6)


def test_full_model_with_zero_cluster_blocks_is_hierarchical() -> None:
    """full with V = 0 and U = 0 has the hierarchical model's ELBO, log p(x) and KL(q ‖ p), by enumeration."""
    hierarchical, full = tiny_model("hierarchical"), tiny_model("full")
    params, x = draw(hierarchical, seed=9, scale=1.0)
    shapes = jax.eval_shape(full.init, jax.random.key(0))["likelihood"]["blocks"]

    def with_cluster_blocks(value: float) -> Params:
        blocks = {
            **params["likelihood"]["blocks"],
            "xyk": jnp.asarray(np.full(shapes["xyk"].shape, value)),
            "xk": jnp.asarray(np.full(shapes["xk"].shape, value)),
        }
        return {**params, "likelihood": {**params["likelihood"], "blocks": blocks}}

    expected, actual = model_table(hierarchical, params, x), model_table(full, with_cluster_blocks(0.0), x)
    assert_close("full(V=0, U=0) ELBO = hierarchical ELBO", actual.elbo, expected.elbo)
    assert_close("full(V=0, U=0) log p(x) = hierarchical log p(x)", actual.log_marginal, expected.log_marginal)
    assert_close("full(V=0, U=0) KL(q‖p) = hierarchical KL(q‖p)", actual.posterior_kl, expected.posterior_kl)
    changed = model_table(full, with_cluster_blocks(0.5), x)  # control: non-zero V, U change the ELBO
    assert np.all(np.abs(np.asarray(changed.elbo - expected.elbo)) > 1e-6)


def posterior_spread(model: Harmonium, params: Params, x: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    r"""``min_z q(z|x)`` and ``χ² = Σ_z p(z|x)²/q(z|x) − 1``, the variance of the weight ``p(z|x)/q(z|x)``."""
    table = model_table(model, params, x)
    q = np.exp(np.asarray(table.log_posterior))
    p = np.exp(np.asarray(table.log_joint - table.log_marginal[:, None]))
    return q.min(axis=1), (p**2 / q).sum(axis=1) - 1.0


@pytest.mark.slow
def test_score_function_gradient_is_unbiased() -> None:
    """The mean over 2000 keys of ∇ surrogate equals ∇ E_q[c + r] by enumeration, |z| < 5 per coordinate."""
    model = tiny_model("full")
    params, x = draw(model, seed=3, batch=1, scale=0.5)
    n_keys, n_samples = 2000, 4
    # every state is drawn ≥ 100 times in expectation, so the spread across keys estimates the standard error
    assert posterior_spread(model, params, x)[0].min() > 100 / (n_keys * n_samples)

    def surrogate(p: Params, key: jax.Array) -> jax.Array:
        return jnp.mean(model.elbo_terms(key, p, x, n_samples)[0])

    keys = jax.random.split(jax.random.key(3), n_keys)
    estimates = jax.jit(jax.vmap(jax.grad(surrogate), in_axes=(None, 0)))(params, keys)
    exact = jax.grad(lambda p: jnp.mean(exact_elbo(model, p, x)))(params)
    flat = np.concatenate([np.asarray(leaf).reshape(n_keys, -1) for leaf in jax.tree.leaves(estimates)], axis=1)
    expected = np.concatenate([np.asarray(leaf).ravel() for leaf in jax.tree.leaves(exact)])
    # 1e-9 covers coordinates whose estimate is exact (zero spread up to roundoff)
    error = flat.std(axis=0) / np.sqrt(n_keys) + 1e-9 * (1.0 + np.abs(expected))
    assert_z_scores("mean over keys of ∇ surrogate vs ∇ exact ELBO", flat.mean(axis=0), expected, error)
    # the gradient is resolved far beyond the noise, so a biased estimator is caught (dividing the
    # score term by S instead of S − 1 gave |z| up to 20 on a model like this one)
    assert np.max(np.abs(expected) / error) > 10 * Z_LIMIT


@pytest.mark.slow
def test_monte_carlo_elbo_and_iwae() -> None:
    """MC ELBO and IWAE against enumeration, over 2500 keys.

    * IWAE with one sample = MC ELBO with one sample (same key);
    * mean over keys of the MC ELBO = exact ELBO (|z| < 5);
    * ELBO ≤ E[IWAE(8)] ≤ log p(x) (|z| < 5);
    * IWAE over all 20000 draws (log-mean-exp of the per-key bounds) → log p(x): for large ``S``
      the delta method gives ``IWAE_S − log p(x) ≈ N(−χ²/2S, χ²/S)`` with ``χ² = Var_q[p(z|x)/q(z|x)]``
      computed by enumeration.
    """
    model = tiny_model("full")
    params, x = draw(model, seed=7, scale=0.4)
    table = model_table(model, params, x)
    elbo, log_marginal = table.elbo, table.log_marginal
    assert np.all(log_marginal - elbo > 0.1)  # the two ends differ, so the orderings below are informative
    n_keys = 2500
    bounds = {
        name: np.asarray(v)
        for name, v in monte_carlo_bounds(model, jax.random.split(jax.random.key(1), n_keys), params, x).items()
    }
    assert_close("IWAE(S=1) = MC ELBO(S=1)", bounds["iwae_1"], bounds["elbo_1"])

    def mean_and_error(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return values.mean(axis=0), values.std(axis=0) / np.sqrt(n_keys)

    mean, error = mean_and_error(bounds["elbo_4"])
    assert_z_scores("mean over keys of the MC ELBO vs the exact ELBO", mean, elbo, error)
    mean, error = mean_and_error(bounds["iwae_8"])
    assert np.all(mean >= elbo - Z_LIMIT * error), (mean, elbo)
    assert np.all(mean <= log_marginal + Z_LIMIT * error), (mean, log_marginal)
    assert np.all(mean - elbo > Z_LIMIT * error)  # IWAE(8) is strictly tighter here
    n_draws = 8 * n_keys
    pooled = table.baseline + logsumexp(bounds["iwae_8"] - table.baseline, axis=0) - np.log(n_keys)
    _, chi_squared = posterior_spread(model, params, x)
    tolerance = Z_LIMIT * np.sqrt(chi_squared / n_draws) + chi_squared / n_draws
    assert np.all(tolerance < 0.05)
    assert np.all(np.abs(pooled - log_marginal) <= tolerance), (pooled, log_marginal, tolerance)


def test_posterior_kl_matches_enumeration_with_large_parameters() -> None:
    """KL(q(z|x) ‖ p(z)) = Σ q log(q/p) also when ρ_y and the blocks are large."""
    model = tiny_model("full")
    params, x = draw(model, seed=12, scale=2.5)
    assert check_posterior_kl(model, params, x)
    assert np.all(np.asarray(model_table(model, params, x).posterior_kl) > 1e-3)


@settings(max_examples=10, deadline=None)
@given(other=st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2), seed=st.integers(0, 100))
def test_fitted_residual_variance_is_the_least_squares_minimum(other: list[float], seed: int) -> None:
    """fit_correction's variance = Var_p r at the fitted ρ_y ≤ Var_p r at any other ρ_y (same samples)."""
    model = tiny_model(("xy", "xk"))  # ρ_k ≠ 0, so the regression target ψ_X − ρ_k·e_k is exercised
    params, _ = draw(model, seed=seed, scale=1.0)
    report = prior_report(model, jax.random.key(seed), params, 4096, jnp.asarray(other))
    assert_close(
        "Var_p[r] at the fitted ρ_y = fitted variance",
        report["at_fit"],
        report["fitted_variance"],
        rtol=1e-7,
        atol=1e-12,
    )
    # fit_correction adds a ridge of 1e-6: it minimises Var_p[r] + 1e-6·|ρ_y|²
    assert (
        float(report["fitted_variance"]) <= float(report["elsewhere"]) + 1e-6 * float(np.sum(np.square(other))) + 1e-12
    )


def test_r_squared() -> None:
    """R² = 1 − Var_p[r]/Var_p[ψ_X(θ_X(z))] on the same samples, clipped to [−10, 1]; NaN when ψ_X is constant."""
    model = tiny_model(("xy", "xk"))
    params, _ = draw(model, seed=8, scale=1.0)
    key, other = jax.random.key(4), jnp.zeros(2)
    report = {name: float(v) for name, v in prior_report(model, key, params, 4096, other).items() if name != "rho_y"}
    expected = 1.0 - report["residual_variance"] / report["psi_variance"]
    assert_close("R² = 1 − Var r / Var ψ_X", report["r_squared"], expected, rtol=1e-10, atol=1e-12)
    assert -10.0 <= report["r_squared"] <= 1.0 and report["psi_variance"] > 1e-3
    huge_rho = {**params, "rho_y": jnp.asarray(np.full(2, 50.0))}
    assert float(prior_report(model, key, huge_rho, 4096, other)["r_squared"]) == -10.0  # clipped
    zero_blocks = jax.tree.map(jnp.zeros_like, params["likelihood"]["blocks"])
    constant = prior_report(
        model, key, {**params, "likelihood": {**params["likelihood"], "blocks": zero_blocks}}, 4096, other
    )
    assert float(constant["psi_variance"]) < 1e-20 and np.isnan(float(constant["r_squared"]))


def test_parameter_trees_of_hierarchical_and_full_differ_by_cluster_blocks() -> None:
    """The trees differ exactly by likelihood/blocks/{xyk, xk}; V is stored as (K−1, D, n), U as (D, K−1)."""

    def leaves(blocks: str) -> dict[str, tuple[int, ...]]:
        tree = jax.eval_shape(tiny_model(blocks).init, jax.random.key(0))
        return {jax.tree_util.keystr(path): leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}

    hierarchical, full = leaves("hierarchical"), leaves("full")
    assert set(full) - set(hierarchical) == {"['likelihood']['blocks']['xyk']", "['likelihood']['blocks']['xk']"}
    assert set(hierarchical) <= set(full)
    assert all(full[path] == shape for path, shape in hierarchical.items())
    assert full["['likelihood']['blocks']['xyk']"] == (2, 3, 2)
    assert full["['likelihood']['blocks']['xk']"] == (3, 2)


@final
@register_block
@dataclass(frozen=True)
class OffByScale(InteractionBlock):
    """A wrong block for negative controls: its adjoint is twice the true adjoint of ``L(z) = W y``."""

    name: ClassVar[str] = "off_by_scale"

    observable_size: int
    latent_size: int
    n_clusters: int

    def param_shape(self) -> tuple[int, ...]:
        return (self.observable_size, self.latent_size)

    def init(self, key: jax.Array) -> jax.Array:
        return jax.random.normal(key, self.param_shape())

    def offset_from_statistics(self, params: jax.Array, statistics: LatentStatistics) -> jax.Array:
        return params @ statistics["b_y"]

    def offset(self, params: jax.Array, y: jax.Array, k: jax.Array) -> jax.Array:
        return y @ params.T

    def adjoint(self, params: jax.Array, statistic: jax.Array) -> LatentStatistics:
        return {"b_y": 2.0 * statistic @ params}


def test_identities_fail_for_a_block_whose_adjoint_is_wrong() -> None:
    """Negative control: a wrong adjoint breaks log p − log q = c + r and ELBO ≤ log p(x)."""
    good = tiny_model("hierarchical")
    model = Harmonium(observable=good.observable, mixture=good.mixture, blocks=(OffByScale(3, 2, 3),))
    params, x = draw(good, seed=1, scale=1.5)
    blocks = {"off_by_scale": params["likelihood"]["blocks"]["xy"]}
    params = {**params, "likelihood": {**params["likelihood"], "blocks": blocks}}
    with pytest.raises(AssertionError, match=r"c\(x\) \+ r\(z\)"):
        check_joint_identity(model, params, x)
    with pytest.raises(AssertionError, match=r"log p\(x\) − ELBO"):
        check_elbo_bound(model, params, x)
