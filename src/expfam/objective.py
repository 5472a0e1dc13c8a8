r"""Loss terms and their weighted combination (docs/objectives.md).

A loss term is a plugin object with a `name` that returns `(contribution, value)` for
one step: the contribution is what the optimiser minimises, the value is the quantity
reported in logs (e.g. the ELBO itself). Every term of a step reads one
[`StepContext`][expfam.objective.StepContext] (the model, the parameters, the batch, the
step, the settings and the posterior `η_q(x)`, computed once), and follows one protocol:

* `states(ctx, key)`: the stop-gradient latent states `(y, k)` at which the term needs the
  conjugation residual `r(z)`, or `None` (the default) for a term that needs none;
* `finish(ctx, key, states, residual)`: `(contribution, value)`, with `residual = r(states)`
  (both `None` for a term without states).

[`evaluate_terms`][expfam.objective.evaluate_terms] evaluates `r` at every term's states in
one call (one grouped product for the full model), and
[`make_loss`][expfam.objective.make_loss] returns one function

$$
\text{loss} = \sum_t w_t\,\text{contribution}_t
$$

that also returns every term's value, so a NaN can be traced to its term.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from expfam.builder import build_model
    >>> model = build_model(observable="bernoulli", data_dim=4, n_latent=2, n_clusters=3, blocks="hierarchical")
    >>> x = jnp.array([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    >>> params = model.init(jax.random.key(0), x)
    >>> loss_fn = make_loss(model, {"elbo": 1.0, "conjugation": 0.1})
    >>> loss, values = loss_fn(params, x, jax.random.key(1), 0)
    >>> sorted(values), loss.shape
    (['conjugation', 'elbo'], ())
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import jax
import jax.numpy as jnp

from expfam.errors import ConfigurationError
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.options import check_option_names, option_names
from expfam.plugins import Registry, get_registry
from expfam.posterior import Posterior

RHO_MODES: tuple[str, ...] = ("learned", "analytic")


def warmup(step: Array, warmup_steps: int | Array) -> Array:
    """Linear warmup factor `min(1, step / warmup_steps)` (1 when `warmup_steps` is 0).

    `warmup_steps` may be a traced array (one per trial of a stacked group,
    [`expfam.experiment.train.loop`][expfam.experiment.train.loop]); then the choice is made with `jnp.where`.
    """
    if isinstance(warmup_steps, (int, float)):
        if warmup_steps <= 0:
            return jnp.ones(())
        return jnp.minimum(1.0, jnp.asarray(step, jnp.result_type(float)) / warmup_steps)
    length = jnp.asarray(warmup_steps, jnp.result_type(float))
    ratio = jnp.asarray(step, jnp.result_type(float)) / jnp.maximum(length, 1.0)
    return jnp.where(length > 0, jnp.minimum(1.0, ratio), 1.0)


@dataclass(frozen=True)
class ObjectiveSettings:
    """Options shared by the loss terms.

    Attributes:
        kl_warmup_steps: steps over which β rises from 0 to 1 (KL warmup of `elbo`); a
            Python int, or a traced array inside a stacked training step.
        conj_warmup_steps: steps over which β_conj rises from 0 to 1 (`conjugation`); idem.
        n_mc_samples: posterior samples `S` per observation.
        n_prior_samples: prior samples `M` for `Var_p[r]` and the analytic ρ fit.
    """

    kl_warmup_steps: int | Array = 0
    conj_warmup_steps: int | Array = 2000
    n_mc_samples: int = 10
    n_prior_samples: int = 1024


States: TypeAlias = tuple[Array, Array]
r"""Latent states `(y, k)`: `y` of shape `L + latent param shape`, `k` of shape `L` (any leading shape `L`)."""


@dataclass(frozen=True, eq=False)
class StepContext:
    r"""What every loss term of one step reads; the posterior is computed once for them all.

    Attributes:
        model: the harmonium (static).
        params: the parameters; a term's contribution is differentiated with respect to them.
        x: the batch, `(B,) + data_shape`.
        posterior: `η_q(x)` with its cluster logits, `ψ_Z(η_q)` and `q(k | x)`
            ([`Harmonium.posterior`][expfam.model.Harmonium.posterior]). Every term reads this one value,
            so the gradient flows back through `η_q(x)` once (for the full model one `D × n(K−1)`
            adjoint product per step, not one per term).
        step: the optimisation step, an int32 scalar (traced inside the training step).
        settings: the options shared by the terms.
    """

    model: Harmonium
    params: Params
    x: Array
    posterior: Posterior
    step: Array
    settings: ObjectiveSettings

    @classmethod
    def create(
        cls, model: Harmonium, params: Params, x: Array, step: Array | int, settings: ObjectiveSettings
    ) -> StepContext:
        """The context of one step: `posterior = model.posterior(params, x)`, computed here, once."""
        return cls(model, params, x, model.posterior(params, x), jnp.asarray(step), settings)


class Objective(abc.ABC):
    r"""Abstract loss term; the registry name is the class variable `name`.

    A term registers an instance. Its options are the fields of its frozen dataclass
    (`[train.loss_options.NAME]` in a run.toml, `--loss-option NAME.KEY=VALUE`): the
    registered instance carries the defaults and
    [`build_objective`][expfam.objective.build_objective] copies it with the options set.
    What a term may read (the context and the model members) is listed in docs/loss-term-api.md.

    A term writes [`finish`][expfam.objective.Objective.finish]; a term built on the conjugation residual
    `r(z)` also writes [`states`][expfam.objective.Objective.states], and then receives `r` at those states,
    evaluated together with every other term's ([`evaluate_terms`][expfam.objective.evaluate_terms]).

    `estimates_elbo` is the term's role: `True` for a term whose reported value is an
    estimate of the ELBO (`elbo`, `rao_blackwell_elbo`), the only terms
    `[train] elbo_estimator` (`--elbo-estimator`) accepts.
    """

    name: ClassVar[str]
    estimates_elbo: ClassVar[bool] = False

    def states(self, ctx: StepContext, key: Array) -> States | None:
        """Stop-gradient states `(y, k)` at which the term needs `r(z)`; `None` (the default) for none."""
        return None

    @abc.abstractmethod
    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(contribution to minimise, reported value)`; `residual = r(states)` has `k`'s shape (`None` without states).

        `key` is this term's key for the step, the one [`states`][expfam.objective.Objective.states] got.
        """

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array | int, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        """The term alone on one batch: [`evaluate_terms`][expfam.objective.evaluate_terms] of this term only."""
        (result,) = evaluate_terms([self], StepContext.create(model, params, x, step, settings), [key])
        return result


def evaluate_terms(terms: Sequence[Objective], ctx: StepContext, keys: Sequence[Array]) -> list[tuple[Array, Array]]:
    r"""`(contribution, value)` of each term at one step, with `r(z)` evaluated once for them all.

    Every term's [`states`][expfam.objective.Objective.states] first (`keys[t]` for term `t`); the sets that
    are not `None` go to the model together
    ([`Harmonium.residual_sets`][expfam.model.Harmonium.residual_sets]): for the full model one grouped product
    over all of them (e.g. the ELBO's `B·S` posterior samples and the conjugation term's `M` prior samples)
    instead of one per term, the same values at less cost. Then each term's
    [`finish`][expfam.objective.Objective.finish] with its states and `r` at them.
    """
    sampled = [term.states(ctx, key) for term, key in zip(terms, keys, strict=True)]
    evaluated = iter(ctx.model.residual_sets(ctx.params, [states for states in sampled if states is not None]))
    residuals = [None if states is None else next(evaluated) for states in sampled]
    return [
        term.finish(ctx, key, states, residual)
        for term, key, states, residual in zip(terms, keys, sampled, residuals, strict=True)
    ]


def with_kl_warmup(ctx: StepContext, surrogate: Array) -> Array:
    r"""`surrogate + (1 − β)·KL(q(z|x) ‖ p(z))` with `β = min(1, step / kl_warmup_steps)`; no KL when 0 steps.

    The β-weighted objective `L_β = ELBO + (1 − β)·KL` shared by the ELBO loss terms, with the KL of
    `ctx.posterior` ([`Harmonium.posterior_kl`][expfam.model.Harmonium.posterior_kl]). With a traced
    `kl_warmup_steps` the KL is always computed and weighted by `1 − β` (0 once warm).
    """
    warmup_steps = ctx.settings.kl_warmup_steps
    if isinstance(warmup_steps, (int, float)) and warmup_steps <= 0:
        return surrogate
    kl = ctx.model.posterior_kl(ctx.params, ctx.x, ctx.posterior)
    return surrogate + (1.0 - warmup(ctx.step, warmup_steps)) * kl


def build_objective(name: str, options: Mapping[str, Any] | None = None, *, registry: Registry | None = None) -> Any:
    r"""The registered loss term `name`, with `options` set (`[train.loss_options.NAME]`, `--loss-option`).

    A term's options are the fields of its dataclass: the registered instance is copied with
    `dataclasses.replace(term, **options)`, so the term's own `__post_init__` checks the values.

    Raises:
        UnknownNameError: `name` is not a registered loss term.
        ConfigurationError: an option the term does not have, naming the term and the options it has.
    """
    term = (registry or get_registry()).objective(name)
    if not options:
        return term
    check_option_names(
        options,
        option_names(term),
        what=f"loss term {name!r}",
        where=f"[train.loss_options.{name}] in a run.toml, or --loss-option {name}.KEY=VALUE",
    )
    return dataclasses.replace(term, **dict(options))


def build_objectives(
    names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None, *, registry: Registry | None = None
) -> list[tuple[str, Any]]:
    """`(name, term)` for each of `names`, built with its options ([`build_objective`][expfam.objective.build_objective]).

    Raises:
        UnknownNameError: a name that is not a registered loss term.
        ConfigurationError: options for a term that is not one of `names`, or an option a term does not have.
    """
    options = options or {}
    unused = sorted(set(options) - set(names))
    if unused:
        raise ConfigurationError(
            f"[train.loss_options] has options for {', '.join(unused)}, which the loss does not use (its terms: "
            f"{', '.join(names)}); remove them or give the term a weight (--loss NAME=WEIGHT)",
            offending=unused,
        )
    return [(name, build_objective(name, options.get(name), registry=registry)) for name in names]


LossFunction = Callable[[Params, Array, Array, Array], tuple[Array, dict[str, Array]]]
#: `loss_fn(params, x, key, step, weights, settings)`: [`make_weighted_loss`][expfam.objective.make_weighted_loss]'s function.
WeightedLossFunction = Callable[
    [Params, Array, Array, Array, Mapping[str, Array], ObjectiveSettings], tuple[Array, dict[str, Array]]
]


def make_weighted_loss(
    model: Harmonium,
    names: tuple[str, ...] | list[str],
    *,
    rho_mode: str = "learned",
    registry: Registry | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> WeightedLossFunction:
    r"""The terms `names` combined with weights and settings given at call time.

    `loss_fn(params, x, key, step, weights, settings)` returns
    `(Σ_t w_t · contribution_t, {term: value})`; `weights` (`{term: w_t}`, every name) and the
    warmups of `settings` may be traced arrays, so one compiled step serves many trials
    ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]). Keys: `split(key, len(names) + 1)`, term `t` gets the
    `t`-th and the analytic ρ fit the last. `options` is `{term: {option: value}}`
    ([`build_objective`][expfam.objective.build_objective]); a term it names must be one of `names`.
    """
    registry = registry or get_registry()
    options = options or {}
    if rho_mode not in RHO_MODES:
        raise ConfigurationError(f"rho_mode must be one of {RHO_MODES}, got {rho_mode!r}", offending=rho_mode)
    if not names:
        raise ConfigurationError("no loss terms given; name at least one, e.g. {'elbo': 1.0}", offending=names)
    terms = build_objectives(names, options, registry=registry)

    def loss_fn(
        params: Params, x: Array, key: Array, step: Array, weights: Mapping[str, Array], settings: ObjectiveSettings
    ) -> tuple[Array, dict[str, Array]]:
        keys = jax.random.split(key, len(terms) + 1)
        if rho_mode == "analytic":
            _, rho_y, _ = model.fit_correction(keys[-1], params, settings.n_prior_samples)
            params = {**params, "rho_y": jax.lax.stop_gradient(rho_y)}
        ctx = StepContext.create(model, params, x, step, settings)
        outcomes = evaluate_terms([term for _, term in terms], ctx, list(keys[: len(terms)]))
        results = {name: outcome for (name, _), outcome in zip(terms, outcomes, strict=True)}
        total = jnp.zeros(())
        for name, _ in terms:
            total = total + weights[name] * results[name][0]
        return total, {name: value for name, (_, value) in results.items()}

    return loss_fn


def make_loss(
    model: Harmonium,
    weights: Mapping[str, float],
    settings: ObjectiveSettings | None = None,
    *,
    rho_mode: str = "learned",
    registry: Registry | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> LossFunction:
    r"""Combine registered loss terms by name and weight into one loss function.

    Args:
        model: the harmonium.
        weights: `{term name: weight}`; zero-weight terms are still evaluated and reported.
        settings: warmups and sample counts.
        rho_mode: `"learned"` (ρ_y is a parameter) or `"analytic"` (ρ_y is
            refit by least squares on prior samples at every step, docs/model.md).
        registry: where term names are looked up.
        options: `{term: {option: value}}`, the terms' own options
            ([`build_objective`][expfam.objective.build_objective]).

    Returns:
        `loss_fn(params, x, key, step) -> (loss, {term: value, ...})`.
    """
    settings = settings or ObjectiveSettings()
    if not weights:
        raise ConfigurationError("no loss terms given; name at least one, e.g. {'elbo': 1.0}", offending=weights)
    for name, weight in weights.items():
        if not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigurationError(f"weight of loss term {name!r} must be a finite number, got {weight!r}")
    fixed = {name: float(weight) for name, weight in weights.items()}
    weighted = make_weighted_loss(model, list(fixed), rho_mode=rho_mode, registry=registry, options=options)

    def loss_fn(params: Params, x: Array, key: Array, step: Array) -> tuple[Array, dict[str, Array]]:
        return weighted(params, x, key, step, fixed, settings)  # type: ignore[arg-type]

    return loss_fn
