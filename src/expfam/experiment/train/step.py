r"""The one training step, and the static spec that names its compiled program.

One step draws a batch uniformly with replacement, evaluates the weighted loss terms and takes
an optimiser step ([`expfam.experiment.train.optimizer`][expfam.experiment.train.optimizer]):

$$
\theta_{t+1} = \theta_t + \text{optimizer}\Big(\nabla_\theta \sum_j w_j\, \ell_j(\theta_t;\, x_{b_t}, \epsilon_t)\Big),
\qquad b_t = \text{batch}(\texttt{fold\_in}(\text{data}, t)),\quad \epsilon_t \sim \texttt{fold\_in}(\text{train}, t).
$$

A step whose loss, term values or gradient are not finite is not applied; the state then stays
frozen with `bad_step` set to that step.

What the compiled step depends on besides its traced arguments (the state, the data and the
per-trial [`StepNumbers`][expfam.experiment.train.step.StepNumbers]) is a
[`StepSpec`][expfam.experiment.train.step.StepSpec]: a hashable value that the chunk programs
([`expfam.experiment.train.chunks`][expfam.experiment.train.chunks]) take as a static argument of
`jax.jit`, so that JAX's own cache keeps one program per spec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding

from expfam.experiment.config import TrainConfig
from expfam.experiment.train.optimizer import make_optimizer, scheduled_params
from expfam.experiment.train.streams import stream_key
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, make_weighted_loss
from expfam.plugins import Registry

T = TypeVar("T")


def loss_weights(config: TrainConfig) -> dict[str, float]:
    """The loss terms of a training config: `{term: weight}` (docs/objectives.md).

    The named knobs (`conj_weight`, `entropy_weight`, ...) give the built-in terms;
    `config.loss_weights` then sets any registered term by name (a weight of 0 given there drops
    the term, except the ELBO, which is always reported).
    """
    weights = {
        config.elbo_estimator: 1.0,
        "conjugation": config.conj_weight,
        "prior_entropy": config.entropy_weight,
        "posterior_entropy": config.posterior_entropy_weight,
    }
    if config.recognition_conj_weight > 0:
        weights["recognition_conjugation"] = config.recognition_conj_weight
    weights.update(config.loss_weights)  # [train.loss_weights] / --loss NAME=WEIGHT: by name, over the knobs
    dropped = {name for name, weight in config.loss_weights.items() if weight == 0 and name != "elbo"}
    return {name: weight for name, weight in weights.items() if name not in dropped}


def objective_settings(config: TrainConfig) -> ObjectiveSettings:
    """Warmups and sample counts of a training config."""
    return ObjectiveSettings(
        kl_warmup_steps=config.kl_warmup_steps,
        conj_warmup_steps=config.conj_warmup_steps,
        n_mc_samples=config.n_mc_samples,
        n_prior_samples=config.n_conj_samples,
    )


class StepNumbers(NamedTuple):
    """The loss's per-trial numbers, traced arguments of the compiled step (one compilation serves all).

    `weights` is `{term: weight}` (the terms of [`loss_weights`][expfam.experiment.train.step.loss_weights]);
    the warmups are step counts. The learning rate and its warmup are in the optimiser state
    ([`make_optimizer`][expfam.experiment.train.optimizer.make_optimizer]).
    """

    weights: dict[str, Array]
    kl_warmup_steps: Array
    conj_warmup_steps: Array


def step_numbers(config: TrainConfig, weights: Mapping[str, float] | None = None) -> StepNumbers:
    """The [`StepNumbers`][expfam.experiment.train.step.StepNumbers] of a training config (`weights` replaces
    [`loss_weights`][expfam.experiment.train.step.loss_weights])."""
    weights = loss_weights(config) if weights is None else dict(weights)
    return StepNumbers(
        weights={name: jnp.asarray(weight, jnp.result_type(float)) for name, weight in weights.items()},
        kl_warmup_steps=jnp.asarray(config.kl_warmup_steps, jnp.int32),
        conj_warmup_steps=jnp.asarray(config.conj_warmup_steps, jnp.int32),
    )


#: Settings that act before the first step only (the starting parameters), not inside it.
INIT_ONLY: tuple[str, ...] = ("cluster_init", "cluster_init_step")

#: The fields of [`TrainConfig`][expfam.experiment.config.TrainConfig] that are numbers inside the compiled step (per trial), not its shape.
TRIAL_NUMBERS: tuple[str, ...] = (
    "learning_rate",
    "lr_warmup_steps",
    "weight_decay",
    "kl_warmup_steps",
    "conj_warmup_steps",
    "conj_weight",
    "entropy_weight",
    "posterior_entropy_weight",
    "recognition_conj_weight",
    "seed",
    "loss_weights",
    "checkpoint_every",
)


def step_shape(config: TrainConfig, weights: Mapping[str, float] | None = None) -> tuple[Any, ...]:
    """What the compiled step depends on besides the trial numbers: configs with equal shapes share a program.

    The config with the numbers of `TRIAL_NUMBERS` reset, the loss terms' names (in
    order) and whether the optimiser decays weights.
    """
    weights = loss_weights(config) if weights is None else dict(weights)
    reset = {name: getattr(TrainConfig(), name) for name in (*TRIAL_NUMBERS, *INIT_ONLY)}
    return (dataclasses.replace(config, **reset), tuple(weights), config.weight_decay > 0)


class TrainState(NamedTuple):
    """What the scan carries: parameters, optimiser state, step, keys, and the first bad step (−1: none).

    `key` (the training stream: Monte-Carlo samples) and `data_key` (the data-order
    stream: batch indices) stay fixed; step `t` uses `fold_in(key, t)` and
    `fold_in(data_key, t)`, so every step's randomness is a function of (seed, step).
    """

    params: Params
    opt_state: Any
    step: Array
    key: Array
    bad_step: Array
    data_key: Array


def initial_state(params: Params, config: TrainConfig, optimizer: optax.GradientTransformation) -> TrainState:
    """The state at step 0: `params` (delayed blocks zeroed by
    [`scheduled_params`][expfam.experiment.train.optimizer.scheduled_params]), the optimiser's initial state
    and the run's `train` and `data` streams."""
    params = scheduled_params(params, config)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=stream_key(config.seed, "train"),
        bad_step=-jnp.ones((), jnp.int32),
        data_key=stream_key(config.seed, "data"),
    )


class ByIdentity(Generic[T]):
    """`value`, equal and hashed by identity: an unhashable registry, or a caller's optimiser, in a static spec.

    Holding `value` keeps it alive, so its `id` is not reused while a spec that holds it exists.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"ByIdentity({type(self.value).__name__} at {id(self.value):#x})"


@dataclass(frozen=True)
class StepSpec:
    """Everything the compiled step depends on besides its traced arguments; hashable, so a static `jax.jit` argument.

    Two runs whose specs are equal share one compiled program: the per-trial numbers
    (`TRIAL_NUMBERS`) are not in it, since they reach the step as
    [`StepNumbers`][expfam.experiment.train.step.StepNumbers] and as optimiser state.

    Attributes:
        model: the harmonium (a frozen, hashable dataclass).
        shape: the training config with its per-trial numbers reset
            ([`step_shape`][expfam.experiment.train.step.step_shape]).
        names: the loss terms, in order.
        decays: whether the default optimiser is AdamW (a weight decay above 0).
        registry: where loss-term names are looked up, by identity.
        optimizer: a caller's own optimiser, by identity; `None`: the default
            ([`make_optimizer`][expfam.experiment.train.optimizer.make_optimizer]), whose numbers are its state.
        batch_sharding: how a batch is split over devices (data parallel), or `None`.
    """

    model: Harmonium
    shape: TrainConfig
    names: tuple[str, ...]
    decays: bool
    registry: ByIdentity[Registry | None]
    optimizer: ByIdentity[optax.GradientTransformation] | None = None
    batch_sharding: NamedSharding | None = None

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optimiser the step applies: the caller's own, or the default of this shape.

        The default's learning rate, warmup and weight decay are its state, so only its form (Adam
        or AdamW, the block hold and scale) comes from the spec; the numbers it starts with here are
        never read by the step.
        """
        if self.optimizer is not None:
            return self.optimizer.value
        return make_optimizer(dataclasses.replace(self.shape, weight_decay=1.0 if self.decays else 0.0))


def step_spec(
    model: Harmonium,
    config: TrainConfig,
    *,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
    batch_sharding: NamedSharding | None = None,
) -> StepSpec:
    """The [`StepSpec`][expfam.experiment.train.step.StepSpec] of training `model` with `config`.

    `weights` replaces [`loss_weights`][expfam.experiment.train.step.loss_weights] (only its names and their
    order count); `optimizer` replaces the default one.
    """
    shape, names, decays = step_shape(config, weights)
    return StepSpec(
        model=model,
        shape=shape,
        names=names,
        decays=decays,
        registry=ByIdentity(registry),
        optimizer=None if optimizer is None else ByIdentity(optimizer),
        batch_sharding=batch_sharding,
    )


def _all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


#: `step(numbers, data, state, _) -> (state, {"loss": ..., term: value})`: one training step.
Step = Callable[[StepNumbers, Array, TrainState, None], tuple[TrainState, dict[str, Array]]]


def make_step(spec: StepSpec) -> Step:
    """The one training step of `spec`, scanned by the chunk of one trial and mapped over a stacked group's trials.

    `step(numbers, data, state, _)` draws a batch of `batch_size` rows of `data` with
    `fold_in(data_key, step)`, evaluates the loss terms `spec.names` weighted by
    `numbers.weights` with `fold_in(key, step)`, and applies the optimiser. A step whose
    loss, term values or gradient are not finite is not applied, and from then on the
    state stays frozen with `bad_step` set to that step. With `spec.batch_sharding` the batch is
    split over that sharding's devices (data parallel; the parameters stay replicated).
    """
    config = spec.shape
    optimizer = spec.make_optimizer()
    loss_fn = make_weighted_loss(
        spec.model, spec.names, rho_mode=config.rho_mode, registry=spec.registry.value, options=config.loss_options
    )

    def step(numbers: StepNumbers, data: Array, state: TrainState, _: None) -> tuple[TrainState, dict[str, Array]]:
        settings = ObjectiveSettings(
            kl_warmup_steps=numbers.kl_warmup_steps,
            conj_warmup_steps=numbers.conj_warmup_steps,
            n_mc_samples=config.n_mc_samples,
            n_prior_samples=config.n_conj_samples,
        )
        batch_key = jax.random.fold_in(state.data_key, state.step)
        loss_key = jax.random.fold_in(state.key, state.step)
        index = jax.random.randint(batch_key, (config.batch_size,), 0, data.shape[0])
        batch = data[index]
        if spec.batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, spec.batch_sharding)  # type: ignore[no-untyped-call]
        (loss, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, loss_key, state.step, numbers.weights, settings
        )
        # Health is decided from the loss, the terms and the gradient, before the update, so that
        # the select below fuses into Adam's own elementwise pass (a check of the new parameters
        # would need a full pass over them first, and then a select pass per array). Adam's step
        # is bounded by a few learning rates, so finite gradients give finite parameters.
        healthy = (state.bad_step < 0) & jnp.isfinite(loss) & _all_finite(values) & _all_finite(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        def keep(new: Any, old: Any) -> Any:
            return jax.tree.map(lambda a, b: jnp.where(healthy, a, b), new, old)

        bad_step = jnp.where((state.bad_step < 0) & ~healthy, state.step, state.bad_step)
        new_state = TrainState(
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            step=state.step + 1,
            key=state.key,
            bad_step=bad_step,
            data_key=state.data_key,
        )
        return new_state, {"loss": loss, **values}

    return step


__all__ = [
    "INIT_ONLY",
    "TRIAL_NUMBERS",
    "ByIdentity",
    "Step",
    "StepNumbers",
    "StepSpec",
    "TrainState",
    "initial_state",
    "loss_weights",
    "make_step",
    "objective_settings",
    "step_numbers",
    "step_shape",
    "step_spec",
]
