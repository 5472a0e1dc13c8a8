r"""The training engine (docs/objectives.md).

One jitted step: draw a batch uniformly with replacement, evaluate the
combined loss, take an optax Adam (or AdamW) step with a learning rate that
rises linearly from 0 over `lr_warmup_steps` and then stays constant. Steps
run in `jax.lax.scan` chunks of `log_every` steps between host
callbacks, so Python is not paid per step.

A step whose loss, term values or gradient are not finite is not
applied: the chunk keeps the last finite parameters and records the step, and
[`train`][expfam.experiment.training.train] raises
[`TrainingDivergedError`][expfam.errors.TrainingDivergedError] naming the step and the offending term.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from expfam import interrupts
from expfam.errors import ConfigurationError, TrainingDivergedError
from expfam.experiment.config import TrainConfig, parse_block_learning_rates, parse_block_schedule
from expfam.experiment.latent_kmeans import apply_cluster_init
from expfam.experiment.streams import stream_key
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, make_weighted_loss, warmup
from expfam.plugins import Registry


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


def _warmed_adam(
    learning_rate: Array, lr_warmup_steps: Array, weight_decay: Array | None = None
) -> optax.GradientTransformation:
    """Adam (AdamW with `weight_decay`) at `learning_rate · min(1, count / lr_warmup_steps)`."""

    def schedule(count: Array) -> Array:
        return learning_rate * warmup(count, lr_warmup_steps)

    if weight_decay is None:
        return optax.adam(schedule)
    return optax.adamw(schedule, weight_decay=weight_decay)


def _warmed_adamw(learning_rate: Array, lr_warmup_steps: Array, weight_decay: Array) -> optax.GradientTransformation:
    return _warmed_adam(learning_rate, lr_warmup_steps, weight_decay)


def _adam(config: TrainConfig) -> optax.GradientTransformation:
    r"""Adam (AdamW when `weight_decay > 0`) with a linear learning-rate warmup, then constant.

    $$
    \eta_t = \eta \cdot \min(1, t / T_\text{warmup})\quad(\eta_t = \eta \text{ when } T_\text{warmup} = 0)
    $$

    The learning rate, its warmup length and the weight decay are optimiser *state*
    (`optax.inject_hyperparams`), not constants of the compiled step: every trial of a
    stacked group ([`expfam.experiment.stacked`][expfam.experiment.stacked]) carries its own in its own state.
    """
    if config.weight_decay > 0:
        return optax.inject_hyperparams(_warmed_adamw)(
            learning_rate=config.learning_rate,
            lr_warmup_steps=config.lr_warmup_steps,
            weight_decay=config.weight_decay,
        )
    return optax.inject_hyperparams(_warmed_adam)(
        learning_rate=config.learning_rate, lr_warmup_steps=config.lr_warmup_steps
    )


class StepNumbers(NamedTuple):
    """The loss's per-trial numbers, traced arguments of the compiled step (one compilation serves all).

    `weights` is `{term: weight}` (the terms of [`loss_weights`][expfam.experiment.training.loss_weights]);
    the warmups are step counts. The learning rate and its warmup are in the optimiser state
    ([`make_optimizer`][expfam.experiment.training.make_optimizer]).
    """

    weights: dict[str, Array]
    kl_warmup_steps: Array
    conj_warmup_steps: Array


def step_numbers(config: TrainConfig, weights: Mapping[str, float] | None = None) -> StepNumbers:
    """The [`StepNumbers`][expfam.experiment.training.StepNumbers] of a training config (`weights` replaces [`loss_weights`][expfam.experiment.training.loss_weights])."""
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


class HoldState(NamedTuple):
    """The state of [`hold_blocks`][expfam.experiment.training.hold_blocks]: the number of updates seen so far (the step)."""

    step: Array


def hold_blocks(starts: Mapping[str, int]) -> optax.GradientTransformation:
    r"""Zero the updates of each interaction block `name` before step `starts[name]`.

    `u_t[\text{block}] \leftarrow u_t[\text{block}] \cdot \mathbb 1[t \ge \text{start}]`; chained
    after Adam, so the block's Adam moments keep following its gradient while it is held and
    its first update is of the usual size. Other parameters pass through unchanged.
    """

    def init(params: Any) -> HoldState:
        return HoldState(step=jnp.zeros((), jnp.int32))

    def update(updates: Any, state: HoldState, params: Any = None) -> tuple[Any, HoldState]:
        blocks = dict(updates["likelihood"]["blocks"])
        for name, start in starts.items():
            blocks[name] = jnp.where(state.step >= start, blocks[name], jnp.zeros_like(blocks[name]))
        held = {**updates, "likelihood": {**updates["likelihood"], "blocks": blocks}}
        return held, HoldState(step=optax.safe_int32_increment(state.step))

    return optax.GradientTransformation(init, update)


def scale_blocks(factors: Mapping[str, float]) -> optax.GradientTransformation:
    r"""Multiply the updates of each interaction block `name` by `factors[name]`.

    Chained after Adam, `u_t[\text{block}] \leftarrow \text{factor}\cdot u_t[\text{block}]` is a
    per-block learning rate `factor · learning_rate` (Adam's step is scale-free in the gradient,
    so scaling the gradient instead would do nothing). Other parameters pass through unchanged.
    """

    def init(params: Any) -> optax.EmptyState:
        return optax.EmptyState()

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, optax.EmptyState]:
        blocks = dict(updates["likelihood"]["blocks"])
        for name, factor in factors.items():
            blocks[name] = factor * blocks[name]
        return {**updates, "likelihood": {**updates["likelihood"], "blocks": blocks}}, state

    return optax.GradientTransformation(init, update)


def check_block_schedule(config: TrainConfig, block_names: tuple[str, ...]) -> None:
    """Every block that the block schedule or the block learning rates name is one of the model's
    `block_names` (else a one-line error).

    Raises:
        ConfigurationError: naming the unknown block and the model's blocks.
    """
    for key, names in (
        ("block_schedule", parse_block_schedule(config.block_schedule)),
        ("block_learning_rates", parse_block_learning_rates(config.block_learning_rates)),
    ):
        for name in names:
            if name not in block_names:
                raise ConfigurationError(
                    f"[train] {key} names block {name!r}, which the model does not have; "
                    f"its blocks are {', '.join(block_names)} (e.g. --block full --block-schedule xyk:1000,xk:1000)",
                    offending=key,
                )


def delayed_blocks(config: TrainConfig) -> dict[str, int]:
    """`{block: start step}` of the blocks that `TrainConfig.block_schedule` starts after step 0."""
    return {name: start for name, start in parse_block_schedule(config.block_schedule).items() if start > 0}


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The run's optimiser: `_adam` (its numbers are optimiser state), followed by
    [`scale_blocks`][expfam.experiment.training.scale_blocks] when blocks have their own learning rates and by
    [`hold_blocks`][expfam.experiment.training.hold_blocks]
    when the block schedule starts a block after step 0."""
    adam = _adam(config)
    factors = {name: f for name, f in parse_block_learning_rates(config.block_learning_rates).items() if f != 1.0}
    delayed = delayed_blocks(config)
    parts = [adam, *([scale_blocks(factors)] if factors else []), *([hold_blocks(delayed)] if delayed else [])]
    return optax.chain(*parts) if len(parts) > 1 else adam


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


def _all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


Chunk = Callable[..., tuple[TrainState, dict[str, Array]]]


def device_mesh(devices: int | None, axis: str) -> Mesh | None:
    """A one-axis mesh over the first `devices` devices (`None` for one device or `None`).

    Raises:
        ConfigurationError: fewer devices are visible than asked for.
    """
    if devices is None or devices == 1:
        return None
    check_device_count(devices)
    return Mesh(np.array(jax.devices()[:devices]), (axis,))


def check_device_count(devices: int | None) -> None:
    """`devices` (`--devices`) is between 1 and the number of visible devices (`None`: one).

    Raises:
        ConfigurationError: naming the count asked for, the count visible and the fix.
    """
    if devices is None:
        return
    available = jax.devices()
    if devices < 1 or devices > len(available):
        raise ConfigurationError(
            f"--devices {devices}: {len(available)} {jax.default_backend()} device(s) visible; ask for 1 to "
            f"{len(available)} (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N host devices)",
            offending=devices,
        )


def partition(*axes: str | None) -> PartitionSpec:
    """`PartitionSpec(*axes)`: dimension `i` split over mesh axis `axes[i]` (`None`: not split)."""
    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]


def check_batch_split(config: TrainConfig, devices: int | None) -> None:
    """A data-parallel run splits each batch evenly: `batch_size` must be a multiple of `devices`."""
    if devices is not None and devices > 1 and config.batch_size % devices:
        raise ConfigurationError(
            f"batch_size {config.batch_size} does not split over {devices} devices; "
            f"use a multiple of {devices} (e.g. {devices * max(1, config.batch_size // devices)})",
            offending="batch_size",
        )


#: Compiled chunks, least recently used first: `{key: (chunk, (registry, optimizer))}`. The
#: registry and optimizer are kept with their chunk so that their `id()` in the key stays theirs.
_CHUNK_CACHE: collections.OrderedDict[tuple[Any, ...], tuple[Chunk, tuple[Any, Any]]] = collections.OrderedDict()
#: How many compiled chunks stay cached; older ones are dropped (a long-lived process that trains
#: many different models, e.g. a grid search, would otherwise keep every compiled program).
CHUNK_CACHE_SIZE = 16


def clear_chunk_cache() -> None:
    """Forget every cached compiled chunk (their memory goes once nothing else holds them)."""
    _CHUNK_CACHE.clear()


#: `step(numbers, data, state, _) -> (state, {"loss": ..., term: value})`: one training step.
Step = Callable[[StepNumbers, Array, TrainState, None], tuple[TrainState, dict[str, Array]]]


def make_step(
    model: Harmonium,
    config: TrainConfig,
    names: tuple[str, ...],
    *,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation,
    batch_sharding: NamedSharding | None = None,
) -> Step:
    """One training step, shared by the solo chunk and the stacked (vmapped) chunk.

    `step(numbers, data, state, _)` draws a batch of `config.batch_size` rows of `data`
    with `fold_in(data_key, step)`, evaluates the loss terms `names` weighted by
    `numbers.weights` with `fold_in(key, step)`, and applies `optimizer`. A step whose
    loss, term values or gradient are not finite is not applied, and from then on the
    state stays frozen with `bad_step` set to that step. With `batch_sharding` the batch is
    split over that sharding's devices (data parallel; the parameters stay replicated).
    """
    loss_fn = make_weighted_loss(model, names, rho_mode=config.rho_mode, registry=registry, options=config.loss_options)

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
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)  # type: ignore[no-untyped-call]
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


def cached_program(
    kind: str,
    model: Harmonium,
    config: TrainConfig,
    weights: Mapping[str, float] | None,
    registry: Registry | None,
    optimizer: optax.GradientTransformation | None,
    build: Callable[[Step], Chunk],
    *,
    devices: int | None = None,
    batch_sharding: NamedSharding | None = None,
) -> Chunk:
    """The compiled program `kind` for this shape, from the cache or built from [`make_step`][expfam.experiment.training.make_step].

    The key is the model, [`step_shape`][expfam.experiment.training.step_shape] (not the per-trial numbers),
    the registry and, for a caller's own optimiser, its identity (the default one's numbers are in its state).
    """
    cache_key = (kind, model, step_shape(config, weights), id(registry), id(optimizer), devices)
    if cache_key in _CHUNK_CACHE:
        _CHUNK_CACHE.move_to_end(cache_key)
        return _CHUNK_CACHE[cache_key][0]
    names = tuple(loss_weights(config) if weights is None else weights)
    step = make_step(
        model,
        config,
        names,
        registry=registry,
        optimizer=make_optimizer(config) if optimizer is None else optimizer,
        batch_sharding=batch_sharding,
    )
    program = build(step)
    _CHUNK_CACHE[cache_key] = (program, (registry, optimizer))
    while len(_CHUNK_CACHE) > CHUNK_CACHE_SIZE:
        _CHUNK_CACHE.popitem(last=False)
    return program


def make_chunk(
    model: Harmonium,
    config: TrainConfig,
    *,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
    devices: int | None = None,
) -> Chunk:
    """A jitted `chunk(state, data, numbers, length)` running `length` steps; returns per-step loss and term values.

    `numbers` is [`step_numbers`][expfam.experiment.training.step_numbers] of the config. The data and the
    numbers are arguments, not constants, so one compiled chunk serves every run with the same model and
    training shape ([`step_shape`][expfam.experiment.training.step_shape]): compiled chunks are cached on that
    key. `optimizer` replaces [`make_optimizer`][expfam.experiment.training.make_optimizer]'s Adam (any
    `optax.GradientTransformation`). `devices > 1` splits each batch over that many devices
    ([`device_mesh`][expfam.experiment.training.device_mesh]).
    """
    mesh = device_mesh(devices, "batch")
    sharding = NamedSharding(mesh, partition("batch")) if mesh is not None else None

    def build(step: Step) -> Chunk:
        @functools.partial(jax.jit, static_argnames="length")
        def chunk(
            state: TrainState, data: Array, numbers: StepNumbers, length: int
        ) -> tuple[TrainState, dict[str, Array]]:
            return jax.lax.scan(functools.partial(step, numbers, data), state, None, length=length)

        return chunk

    return cached_program(
        "solo", model, config, weights, registry, optimizer, build, devices=devices, batch_sharding=sharding
    )


@dataclass
class TrainResult:
    """Final parameters and the per-step history of the loss and each term's value."""

    params: Params
    history: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0


def _diverged(history: dict[str, np.ndarray], offset: int, bad_step: int, params: Params) -> TrainingDivergedError:
    row = bad_step - offset
    values = {name: float(series[row]) for name, series in history.items()}
    bad_terms = [name for name, value in values.items() if name != "loss" and not np.isfinite(value)]
    term = bad_terms[0] if bad_terms else ("loss" if not np.isfinite(values["loss"]) else "gradient")
    detail = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
    if term == "gradient":  # every term was finite, its gradient was not
        what, fix = "the gradient is not finite", "Lower --learning-rate or raise --lr-warmup-steps"
    elif term == "loss":
        what, fix = "the total loss is not finite", "Lower --learning-rate"
    else:
        what, fix = f"term {term!r} is not finite", f"Lower --learning-rate or the weight of {term!r} (--loss)"
    finite = all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(params))
    if finite:
        kept = f"the last finite parameters (after {bad_step} steps) were kept"
    else:  # a finite gradient times a huge learning rate: the parameters before the bad step were not finite
        kept = f"the parameters were no longer finite after {bad_step} steps, so none were kept"
    return TrainingDivergedError(
        f"training diverged at step {bad_step}: {what} ({detail}); {kept}. {fix}",
        step=bad_step,
        term=term,
        last_params=params if finite else None,
    )


def _store_fitted_correction(model: Harmonium, params: Params, config: TrainConfig, step: int) -> Params:
    """In analytic ρ mode, write the least-squares `ρ_y` into the parameters (for evaluation and saving)."""
    key = jax.random.fold_in(stream_key(config.seed, "correction"), step)
    _, rho_y, _ = model.fit_correction(key, params, config.n_conj_samples)
    return {**params, "rho_y": rho_y}


def scheduled_params(params: Params, config: TrainConfig) -> Params:
    """`params` with every block that the block schedule starts after step 0 set to zero.

    With the blocks `xyk` and `xk` at zero the full model is the hierarchical one
    (their offsets, adjoints and the cluster correction `ρ_k` all vanish), so a
    schedule `xyk:s,xk:s` trains the hierarchical model until step `s`.
    """
    delayed = delayed_blocks(config)
    if not delayed:
        return params
    blocks = {
        name: jnp.zeros_like(value) if name in delayed else value
        for name, value in params["likelihood"]["blocks"].items()
    }
    return {**params, "likelihood": {**params["likelihood"], "blocks": blocks}}


def initial_state(params: Params, config: TrainConfig, optimizer: optax.GradientTransformation) -> TrainState:
    """The state at step 0: `params` (delayed blocks zeroed by [`scheduled_params`][expfam.experiment.training.scheduled_params]), the
    optimiser's initial state and the run's `train` and `data` streams."""
    params = scheduled_params(params, config)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=stream_key(config.seed, "train"),
        bad_step=-jnp.ones((), jnp.int32),
        data_key=stream_key(config.seed, "data"),
    )


def accept_chunk(
    model: Harmonium, config: TrainConfig, state: TrainState, piece: Mapping[str, np.ndarray], done: int
) -> TrainState:
    """The state after a chunk that started at step `done`, ready to commit.

    Raises [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] when the chunk hit a non-finite
    step (`piece` is its per-step history); in analytic ρ mode stores the fitted `ρ_y`.
    """
    bad_step = int(state.bad_step)
    if bad_step >= 0:
        raise _diverged(dict(piece), done, bad_step, state.params)
    if config.rho_mode == "analytic":
        state = state._replace(params=_store_fitted_correction(model, state.params, config, int(state.step)))
    return state


#: `checkpoint(state)`: called with a complete state to be written (see [`expfam.experiment.checkpoints`][expfam.experiment.checkpoints]).
CheckpointCallback = Callable[[TrainState], None]


def train(
    model: Harmonium,
    params: Params,
    data: Array,
    config: TrainConfig,
    *,
    callback: Callable[[int, Params, dict[str, np.ndarray]], None] | None = None,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
    start: TrainState | None = None,
    checkpoint: CheckpointCallback | None = None,
    checkpoint_every: int = 0,
    devices: int | None = None,
) -> TrainResult:
    """Train `params` on `data` up to step `config.n_steps`.

    Step `t` draws its batch with `fold_in(data stream, t)` and its samples with
    `fold_in(train stream, t)` ([`expfam.experiment.streams`][expfam.experiment.streams]), so training
    resumed from a state at step `t` gives the same numbers as training
    straight through, to the last bit on one device.

    Args:
        model: the harmonium.
        params: initial parameters (ignored when `start` is given).
        data: training observations `(N,) + data_shape`.
        config: the training section of a run configuration.
        callback: called after every chunk with `(step, params, chunk_history)`.
        weights: `{loss term: weight}` replacing the terms of [`loss_weights`][expfam.experiment.training.loss_weights]
            (e.g. to add a third-party objective).
        registry: where loss-term names are looked up.
        optimizer: any `optax.GradientTransformation` (default:
            [`make_optimizer`][expfam.experiment.training.make_optimizer]).
        start: a state to continue from (e.g. a checkpoint); its `step` must be a
            multiple of `config.log_every` for chunks to line up with an uninterrupted run.
        checkpoint: called with the state every `checkpoint_every` chunks, after the
            last chunk, and before re-raising `KeyboardInterrupt`.
        checkpoint_every: chunks between checkpoints (0: only at the end and on interrupt).
        devices: split each batch over this many devices (data parallel, parameters
            replicated; the same numbers as one device to float rounding). `None`: one.

    Returns:
        The final parameters and the per-step history of the steps run here.

    Raises:
        TrainingDivergedError: NaN or inf in the loss, a term or the parameters,
            with the step and the term named and the last finite parameters attached.
        KeyboardInterrupt: Ctrl-C (or SIGTERM turned into it by the caller), after
            `checkpoint` was given the last complete state.
    """
    check_block_schedule(config, model.block_names)
    # the default optimiser's numbers are its state, so its chunk is shared by every config of a shape
    check_batch_split(config, devices)
    chunk = make_chunk(model, config, weights=weights, registry=registry, optimizer=optimizer, devices=devices)
    numbers = step_numbers(config, weights)
    data = jnp.asarray(data)
    if start is None:
        state = initial_state(params, config, make_optimizer(config) if optimizer is None else optimizer)
    else:
        state = start
    mesh = device_mesh(devices, "batch")
    if mesh is not None:  # replicated over the mesh: each device holds the state, the data and the numbers
        data, state, numbers = jax.device_put((data, state, numbers), NamedSharding(mesh, partition()))
    pieces: list[dict[str, np.ndarray]] = []
    done = first = int(state.step)
    chunks = 0
    try:
        while done < config.n_steps:
            interrupts.check()  # a safe point: the state is committed and no XLA work is in flight
            initialised = apply_cluster_init(model, config, state.params, data, done)
            if initialised is not state.params:  # the cluster initialisation ran (docs/training.md)
                if mesh is not None:
                    initialised = jax.device_put(initialised, NamedSharding(mesh, partition()))
                state = state._replace(params=initialised)
            take = min(config.log_every, config.n_steps - done)
            new_state, values = chunk(state, data, numbers, length=take)
            piece = {name: np.asarray(series) for name, series in values.items()}
            new_state = accept_chunk(model, config, new_state, piece, done)
            pieces.append(piece)
            if callback is not None:  # before the state is committed: an interrupt here checkpoints the previous one
                callback(done + take, new_state.params, piece)
            state, done, chunks = new_state, done + take, chunks + 1
            if checkpoint is not None and checkpoint_every > 0 and chunks % checkpoint_every == 0:
                checkpoint(state)
    except KeyboardInterrupt:
        if checkpoint is not None:
            checkpoint(state)
        raise
    if checkpoint is not None and done > first and not (checkpoint_every > 0 and chunks % checkpoint_every == 0):
        checkpoint(state)
    history = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]} if pieces else {}
    return TrainResult(params=state.params, history=history, steps=done)
