r"""Loss terms and their weighted combination (docs/objectives.md).

A loss term is a plugin object with a `name` and a pure `__call__` that
returns `(contribution, value)`: the contribution is what the optimiser
minimises, the value is the quantity reported in logs (e.g. the ELBO itself).
Terms compose like optax transforms: [`make_loss`][expfam.objective.make_loss] looks each name up in
the registry and returns one function

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
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from expfam.errors import ConfigurationError
from expfam.family import Array
from expfam.mixture import MixtureParams
from expfam.model import Harmonium, Params
from expfam.options import check_option_names, option_names
from expfam.plugins import Registry, get_registry
from expfam.posterior import shared_computations

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


def with_kl_warmup(
    model: Harmonium,
    params: Params,
    x: Array,
    posterior: MixtureParams,
    surrogate: Array,
    step: Array,
    warmup_steps: int | Array,
) -> Array:
    r"""`surrogate + (1 − β)·KL(q(z|x) ‖ p(z))` with `β = min(1, step / warmup_steps)`; no KL when 0 steps.

    The β-weighted objective `L_β = ELBO + (1 − β)·KL` shared by the ELBO loss terms. With a
    traced `warmup_steps` the KL is always computed and weighted by `1 − β` (0 once warm).
    """
    if isinstance(warmup_steps, (int, float)) and warmup_steps <= 0:
        return surrogate
    return surrogate + (1.0 - warmup(step, warmup_steps)) * model.posterior_kl(params, x, posterior)


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


class Objective(abc.ABC):
    r"""Abstract loss term; the registry name is the class variable `name`.

    A term registers an instance. Its options are the fields of its frozen dataclass
    (`[train.loss_options.NAME]` in a run.toml, `--loss-option NAME.KEY=VALUE`): the
    registered instance carries the defaults and
    [`build_objective`][expfam.objective.build_objective] copies it with the options set.
    The model methods a term may call are listed in docs/loss-term-api.md.

    `estimates_elbo` is the term's role: `True` for a term whose reported value is an
    estimate of the ELBO (`elbo`, `rao_blackwell_elbo`), the only terms
    `[train] elbo_estimator` (`--elbo-estimator`) accepts.
    """

    name: ClassVar[str]
    estimates_elbo: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        """`(contribution to minimise, reported value)` for one batch `x`."""


class ResidualObjective(Objective):
    r"""A loss term built on the conjugation residual `r(z)` at states it samples.

    It is written in two halves: [`states`][expfam.objective.ResidualObjective.states] draws the stop-gradient
    states `z = (y, k)` at which it needs `r`, and [`finish`][expfam.objective.ResidualObjective.finish] turns
    `r` at those states into `(contribution, value)`. Called alone, the term is `finish(states, r(states))`.
    Inside [`make_weighted_loss`][expfam.objective.make_weighted_loss] every such term's states go to the
    model together ([`expfam.model.Harmonium.residual_sets`][expfam.model.Harmonium.residual_sets]): for the
    full model that is one grouped product over all the states (e.g. the ELBO's `B·S` posterior samples and
    the conjugation term's `M` prior samples) instead of one per term, the same values at less cost.
    """

    @abc.abstractmethod
    def states(
        self, model: Harmonium, params: Params, x: Array, key: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        """Stop-gradient states `(y, k)`: `y` of shape `L + latent param shape`, `k` of shape `L`."""

    @abc.abstractmethod
    def finish(
        self,
        model: Harmonium,
        params: Params,
        x: Array,
        step: Array,
        settings: ObjectiveSettings,
        states: tuple[Array, Array],
        residual: Array,
    ) -> tuple[Array, Array]:
        """`(contribution, value)` from `residual = r(states)`, of `k`'s shape `L`."""

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        with shared_computations():  # η_q(x) once for both halves
            states = self.states(model, params, x, key, settings)
            return self.finish(model, params, x, step, settings, states, model.residual_sets(params, [states])[0])


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
        results: dict[str, tuple[Array, Array]] = {}
        with shared_computations():  # η_q(x) and q(k|x) once for all terms
            sampled = {
                name: term.states(model, params, x, term_key, settings)
                for (name, term), term_key in zip(terms, keys[: len(terms)], strict=True)
                if isinstance(term, ResidualObjective)
            }
            # every residual term's r(z) in one call: one grouped product for the full model
            evaluated = dict(zip(sampled, model.residual_sets(params, list(sampled.values())), strict=True))
            for (name, term), term_key in zip(terms, keys[: len(terms)], strict=True):
                if isinstance(term, ResidualObjective):
                    results[name] = term.finish(model, params, x, step, settings, sampled[name], evaluated[name])
                else:
                    results[name] = term(model, params, x, term_key, step, settings)
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
