r"""Checks of a loss term (docs/testing.md, "Loss terms").

[`check_objective`][expfam.testing.objective_checks.check_objective] calls a term as the
training step does: one [`StepContext`][expfam.objective.StepContext] built from the parameters
(with the posterior `η_q(x)`), then `states(ctx, key)`, `r` at those states and
`finish(ctx, key, states, residual) -> (contribution, value)`
([`evaluate_terms`][expfam.objective.evaluate_terms]), on a small model, and checks:

* **finite**: the contribution and the value are finite scalars and so is every entry of
  $\nabla_\theta\,\text{contribution}$;
* **jit**: the term traces under `jax.jit` (no Python branch on a traced value, no
  concrete-value conversion) and its jitted call is finite;
* **vmap**: under `jax.vmap` over keys and over stacked parameters (how stacked trials
  train, docs/stacking.md) a slice equals the unbatched jitted call (float64 roundoff);
* **unbiased** (when an exact target is given): over `n_draws` keys the mean value, the mean
  contribution and the mean gradient agree with the exact quantity, computed by enumerating
  every latent state, within $|z| < 5$ (`expfam.testing.Z_LIMIT`).

An exact target is a function `exact(model, params, x, step, settings) -> (contribution, value)`,
differentiable in `params`: what the term's draws average to. The targets of the built-in
terms are in [`BUILTIN_TARGETS`][expfam.testing.objective_checks.BUILTIN_TARGETS]; a term
that estimates the ELBO passes
[`exact_elbo_target`][expfam.testing.objective_checks.exact_elbo_target].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings, StepContext, evaluate_terms, warmup
from expfam.testing._assertions import assert_close, assert_z_scores, require_x64
from expfam.testing.model_checks import exact_elbo
from expfam.testing.model_inputs import enumerate_states

ExactTarget = Callable[[Harmonium, Params, Array, Array, ObjectiveSettings], tuple[Array, Array]]
r"""`exact(model, params, x, step, settings) -> (contribution, value)`, differentiable in `params`."""

CHECK_SETTINGS = ObjectiveSettings(kl_warmup_steps=0, conj_warmup_steps=0, n_mc_samples=4, n_prior_samples=16)
r"""Settings of the check: no warmups unless given, few samples (small, fast draws)."""

TRANSFORM_RTOL: float = 1e-7
r"""Relative tolerance between the jitted and the vmapped calls (same keys, float64)."""


# ----------------------------------------------------------------- exact targets
def _log_prior(model: Harmonium, params: Params) -> tuple[Array, Array, Array]:
    r"""`log p(z)` at every enumerated state, with the states `(y, k)`."""
    y, k = enumerate_states(model)
    return jax.vmap(model.mixture.log_density, in_axes=(None, 0, 0))(params["prior"], y, k), y, k


def _log_posterior(model: Harmonium, params: Params, x: Array) -> tuple[Array, Array, Array]:
    r"""`log q(z | x_b)` at every enumerated state, `(B, Z)`, with the states."""
    y, k = enumerate_states(model)
    posterior = model.posterior_params(params, x)
    return jax.vmap(lambda one: model.posterior_log_density(one, y, k))(posterior), y, k


def _entropy(probabilities: Array) -> Array:
    safe = jnp.where(probabilities > 0, probabilities, 1.0)
    return -jnp.sum(probabilities * jnp.log(safe))


def exact_elbo_target(
    model: Harmonium, params: Params, x: Array, step: Array, settings: ObjectiveSettings
) -> tuple[Array, Array]:
    r"""The ELBO terms' target: value $\operatorname{mean}_b \mathrm{ELBO}(x_b)$, contribution
    $-\operatorname{mean}_b[\mathrm{ELBO}(x_b) + (1-\beta)\,\mathrm{KL}(q(z\mid x_b)\,\|\,p(z))]$.

    The ELBO is `c(x) + Σ_z q(z|x) r(z)` and the KL `Σ_z q log(q/p)`, both by enumeration.
    """
    elbo = exact_elbo(model, params, x)
    log_q, _, _ = _log_posterior(model, params, x)
    log_p, _, _ = _log_prior(model, params)
    kl = jnp.sum(jnp.exp(log_q) * (log_q - log_p[None, :]), axis=1)
    beta = warmup(step, settings.kl_warmup_steps)
    return -jnp.mean(elbo + (1.0 - beta) * kl), jnp.mean(elbo)


def _weighted_variance(weights: Array, values: Array) -> Array:
    mean = jnp.sum(weights * values, axis=-1)
    return jnp.sum(weights * values**2, axis=-1) - mean**2


def exact_conjugation_target(
    model: Harmonium, params: Params, x: Array, step: Array, settings: ObjectiveSettings
) -> tuple[Array, Array]:
    r"""`conjugation`'s target: $\frac{M-1}{M}\mathrm{Var}_{p(z)}[r(z)]$ with $p$ held fixed
    (the term's `M` prior states carry no gradient), times $\beta_\text{conj}$ in the contribution.

    `jnp.var` over `M = n_prior_samples` draws divides by `M`, hence the factor.
    """
    log_p, y, k = _log_prior(model, params)
    size = settings.n_prior_samples
    value = (size - 1) / size * _weighted_variance(jnp.exp(jax.lax.stop_gradient(log_p)), model.residual(params, y, k))
    return warmup(step, settings.conj_warmup_steps) * value, value


def exact_recognition_conjugation_target(
    model: Harmonium, params: Params, x: Array, step: Array, settings: ObjectiveSettings
) -> tuple[Array, Array]:
    r"""`recognition_conjugation`'s target: $\operatorname{mean}_b \frac{S-1}{S}\mathrm{Var}_{q(z\mid x_b)}[r(z)]$,
    $q$ held fixed, `S = n_mc_samples`."""
    log_q, y, k = _log_posterior(model, params, x)
    size = settings.n_mc_samples
    weights = jnp.exp(jax.lax.stop_gradient(log_q))
    value = (size - 1) / size * jnp.mean(_weighted_variance(weights, model.residual(params, y, k)[None, :]))
    return value, value


def exact_prior_entropy_target(
    model: Harmonium, params: Params, x: Array, step: Array, settings: ObjectiveSettings
) -> tuple[Array, Array]:
    r"""`prior_entropy`'s target: $H(p(k))$ with $p(k) = \sum_y p(y, k)$ by enumeration; contribution $-H$."""
    log_p, _, k = _log_prior(model, params)
    entropy = _entropy(jnp.exp(log_p) @ jax.nn.one_hot(k, model.n_clusters))
    return -entropy, entropy


def exact_posterior_entropy_target(
    model: Harmonium, params: Params, x: Array, step: Array, settings: ObjectiveSettings
) -> tuple[Array, Array]:
    r"""`posterior_entropy`'s target: $H(\operatorname{mean}_b q(k\mid x_b))$, $q(k\mid x) = \sum_y q(y, k\mid x)$."""
    log_q, _, k = _log_posterior(model, params, x)
    entropy = _entropy(jnp.mean(jnp.exp(log_q) @ jax.nn.one_hot(k, model.n_clusters), axis=0))
    return -entropy, entropy


BUILTIN_TARGETS: dict[str, ExactTarget] = {
    "elbo": exact_elbo_target,
    "rao_blackwell_elbo": exact_elbo_target,
    "conjugation": exact_conjugation_target,
    "recognition_conjugation": exact_recognition_conjugation_target,
    "prior_entropy": exact_prior_entropy_target,
    "posterior_entropy": exact_posterior_entropy_target,
}
r"""The exact target of each built-in loss term, by registry name."""


# ----------------------------------------------------------------------- checks
def _evaluate(
    term: Objective, model: Harmonium, settings: ObjectiveSettings, params: Params, x: Array, key: Array, step: Array
) -> tuple[Array, Array, Params]:
    r"""`(contribution, value, ∇contribution)` of one call; the context (with `η_q(x)`) is built from `p`."""

    def contribution(p: Params) -> tuple[Array, Array]:
        (result,) = evaluate_terms([term], StepContext.create(model, p, x, step, settings), [key])
        return result

    (total, value), grads = jax.value_and_grad(contribution, has_aux=True)(params)
    return total, value, grads


def _label(term: Objective) -> str:
    return f"loss term {getattr(term, 'name', '?')!r} ({type(term).__name__})"


def _flat(result: tuple[Array, Array, Params]) -> np.ndarray:
    r"""Contribution, value and every gradient entry as one float64 vector (a leading draw axis kept)."""
    total, value, grads = result
    leaves = [np.asarray(total)[..., None], np.asarray(value)[..., None]]
    leaves += [np.asarray(leaf).reshape((*np.shape(total), -1)) for leaf in jax.tree.leaves(grads)]
    return np.concatenate(leaves, axis=-1).astype(np.float64)


def _check_finite(name: str, result: tuple[Array, Array, Params]) -> None:
    total, value, grads = result
    for what, array in (("contribution", total), ("value", value)):
        if np.shape(array) != ():
            raise AssertionError(f"{name}: the {what} has shape {np.shape(array)}; a term returns two scalars")
        if not np.isfinite(np.asarray(array)):
            raise AssertionError(f"{name}: the {what} is {float(array)!r}, not finite")
    paths = jax.tree_util.tree_flatten_with_path(grads)[0]
    for path, leaf in paths:
        if not np.isfinite(np.asarray(leaf)).all():
            where = jax.tree_util.keystr(path)
            raise AssertionError(f"{name}: the gradient of the contribution is not finite at params{where}")


def _draws(
    name: str,
    evaluate: Callable[..., Any],
    single: np.ndarray,
    params: Params,
    x: Array,
    key: Array,
    step: Array,
    n_draws: int,
) -> np.ndarray:
    r"""`n_draws` calls at `params` and one at other parameters, in one `jax.vmap` over keys and parameters.

    The first and the last slice must equal the unbatched jitted calls (the vmap property);
    returns the `n_draws` draws at `params`.
    """
    keys = jax.random.split(jax.random.fold_in(key, 1), n_draws + 1)
    keys = keys.at[0].set(key)
    other = jax.tree.map(lambda leaf: 0.9 * leaf, params)
    stacked = jax.tree.map(
        lambda a, b: jnp.concatenate([jnp.broadcast_to(a, (n_draws, *a.shape)), b[None]]), params, other
    )
    batched = _flat(jax.jit(jax.vmap(evaluate, in_axes=(0, None, 0, None)))(stacked, x, keys, step))
    last = _flat(jax.jit(evaluate)(other, x, keys[-1], step))
    expected = np.stack([single, last])
    tolerance = TRANSFORM_RTOL * (1.0 + float(np.max(np.abs(expected))))
    assert_close(
        f"{name}: jax.vmap(term) over keys and parameters = the term per slice",
        batched[[0, -1]],
        expected,
        rtol=TRANSFORM_RTOL,
        atol=tolerance,
    )
    return batched[:-1]


def _check_unbiased(
    name: str,
    draws: np.ndarray,
    exact: ExactTarget,
    model: Harmonium,
    settings: ObjectiveSettings,
    params: Params,
    x: Array,
    step: Array,
) -> None:
    @jax.jit
    def target(p: Params) -> tuple[tuple[Array, Array], Params]:
        return jax.value_and_grad(lambda q: exact(model, q, x, step, settings), has_aux=True)(p)

    (total, value), grads = target(params)
    expected = _flat((total, value, grads))
    n_draws = draws.shape[0]
    mean = draws.mean(axis=0)
    roundoff = 1e3 * float(np.finfo(np.float64).eps) * (1.0 + float(np.max(np.abs(expected))))
    standard_error = np.maximum(draws.std(axis=0, ddof=1) / np.sqrt(n_draws), roundoff)
    assert_z_scores(
        f"{name}: mean over {n_draws} draws of (contribution, value, ∇contribution) = exact target "
        "(entry 0 the contribution, 1 the value, then the gradient's leaves in order)",
        mean,
        expected,
        standard_error,
    )


def check_objective(
    term: Objective,
    model: Harmonium,
    params: Params,
    x: Array,
    *,
    key: Array,
    step: int = 0,
    settings: ObjectiveSettings = CHECK_SETTINGS,
    exact: ExactTarget | None = None,
    n_draws: int = 2000,
) -> dict[str, bool]:
    r"""Check a loss term on a small model: finite, jit, vmap and, with `exact`, unbiasedness.

    Args:
        term: the loss term (an [`Objective`][expfam.objective.Objective]), with its options set.
        model: a small harmonium; `exact` enumerates its `2ⁿ·K` latent states.
        params: its parameters (e.g. [`random_model_params`][expfam.testing.random_model_params]).
        x: a batch of observations `(B,) + data_shape`.
        key: randomness of the calls.
        step: the training step passed to the term (warmups).
        settings: the terms' shared settings (default: no warmups, 4 posterior and 16 prior samples).
        exact: the term's exact target (module docstring), or `None` when the term claims none.
        n_draws: keys averaged for the unbiasedness check.

    Returns:
        `{"finite": True, "jit": True, "vmap": True, "unbiased": bool}`; `"unbiased"` is `False`
        when no `exact` target was given (the check did not apply).

    Raises:
        AssertionError: naming the term, the property and the worst entry.
    """
    require_x64()
    name = _label(term)
    step_array = jnp.asarray(step, jnp.int32)
    evaluate = partial(_evaluate, term, model, settings)
    try:
        single = jax.jit(evaluate)(params, x, key, step_array)
    except jax.errors.JAXTypeError as error:  # a Python branch on, or conversion of, a traced value
        first = str(error).strip().splitlines()[0]
        raise AssertionError(
            f"{name} does not trace under jax.jit ({type(error).__name__}: {first}); "
            "use jnp.where / jax.lax.cond instead of Python branches on array values"
        ) from error
    _check_finite(name, single)
    draws = _draws(name, evaluate, _flat(single), params, x, key, step_array, n_draws if exact is not None else 1)
    if exact is not None:
        _check_unbiased(name, draws, exact, model, settings, params, x, step_array)
    return {"finite": True, "jit": True, "vmap": True, "unbiased": exact is not None}
