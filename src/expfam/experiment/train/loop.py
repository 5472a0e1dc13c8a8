r"""The one training loop, for one trial or a stacked group of trials of one shape (docs/training.md, docs/stacking.md).

Steps run in chunks of `log_every` steps ([`expfam.experiment.train.chunks`][expfam.experiment.train.chunks]);
between chunks, in plain Python with no XLA work in flight, the loop applies the cluster start when it is
due ([`expfam.experiment.train.cluster_start`][expfam.experiment.train.cluster_start]), checks each
trial's chunk for divergence, calls the callbacks and writes checkpoints. The loop is the same for one
trial and for a group; what differs is the runner that advances the trials by one chunk: the plain
step's scan for one trial ([`train`][expfam.experiment.train.loop.train]), the scan mapped over a
trial axis for a group ([`train_stacked`][expfam.experiment.train.loop.train_stacked]).

A step whose loss, term values or gradient are not finite is not applied: the trial keeps its last
finite parameters and records the step. [`train`][expfam.experiment.train.loop.train] then raises
[`TrainingDivergedError`][expfam.errors.TrainingDivergedError] naming the step and the offending term;
in a group, that trial is frozen (its error is its outcome) and the others go on.

Examples:
    >>> import dataclasses, jax, jax.numpy as jnp
    >>> from expfam.builder import build_model
    >>> from expfam.experiment.config import TrainConfig
    >>> model = build_model(observable="bernoulli", data_dim=4, n_latent=2, n_clusters=2, blocks="hierarchical")
    >>> x = jnp.array([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]] * 8)
    >>> base = TrainConfig(n_steps=4, batch_size=4, log_every=2, n_conj_samples=8, n_mc_samples=2)
    >>> configs = [dataclasses.replace(base, seed=s, learning_rate=lr) for s, lr in [(0, 1e-3), (1, 3e-3)]]
    >>> params = [model.init(jax.random.key(c.seed), x) for c in configs]
    >>> results = train_stacked(model, params, x, configs)
    >>> [result.steps for result in results]
    [4, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding

from expfam import interrupts
from expfam.errors import ConfigurationError, TrainingDivergedError
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.chunks import (
    GroupSpec,
    check_stackable,
    group_data,
    resolve_vectorize,
    run_chunk,
    run_group_chunk,
    stack,
    unstack,
)
from expfam.experiment.train.cluster_start import apply_cluster_init
from expfam.experiment.train.devices import check_batch_split, device_mesh, partition
from expfam.experiment.train.divergence import accept_chunk
from expfam.experiment.train.optimizer import check_block_schedule, make_optimizer
from expfam.experiment.train.step import TrainState, initial_state, step_numbers, step_spec
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.plugins import Registry


@dataclass
class TrainResult:
    """Final parameters and the per-step history of the loss and each term's value."""

    params: Params
    history: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0


#: `checkpoint(state)`: called with a complete state to be written (see [`expfam.experiment.runs.checkpoints`][expfam.experiment.runs.checkpoints]).
CheckpointCallback = Callable[[TrainState], None]
#: `callback(step, params, chunk_history)` of one trial, called after each of its chunks.
TrialCallback = Callable[[int, Params, dict[str, np.ndarray]], None]
#: One array every trial trains on, or one per trial.
TrialData = Array | np.ndarray | Sequence[Array | np.ndarray]
#: What [`train_stacked`][expfam.experiment.train.loop.train_stacked] returns per trial: its result, or the error that froze it.
Outcome = TrainResult | TrainingDivergedError
#: `runner(states, length) -> (states, per-trial chunk histories)`: advance every trial by one chunk.
Runner = Callable[[list[TrainState], int], tuple[list[TrainState], list[dict[str, np.ndarray]]]]


@dataclass(frozen=True)
class Trial:
    """What the loop needs of one trial besides its state: its config, its training rows and its hooks."""

    config: TrainConfig
    rows: Array
    callback: TrialCallback | None = None
    checkpoint: CheckpointCallback | None = None
    checkpoint_every: int = 0


def run_loop(model: Harmonium, trials: Sequence[Trial], states: list[TrainState], runner: Runner) -> list[Outcome]:
    """Advance `trials` from `states` (all at one step) to `n_steps`, one chunk of `runner` at a time.

    Before each chunk: the safe point for a deferred interrupt ([`expfam.interrupts.check`][expfam.interrupts.check])
    and each running trial's cluster start when due. After it, per running trial: the divergence check
    ([`accept_chunk`][expfam.experiment.train.divergence.accept_chunk]; a diverged trial is frozen, its
    error its outcome), its callback, then the commit of its state, and its checkpoint every
    `checkpoint_every` chunks. `KeyboardInterrupt` checkpoints every running trial's last complete state
    and propagates.
    """
    config = trials[0].config
    outcomes: list[Outcome | None] = [None] * len(trials)
    pieces: list[list[dict[str, np.ndarray]]] = [[] for _ in trials]
    done = first = int(states[0].step)
    chunks = 0

    def save(index: int) -> None:
        checkpoint = trials[index].checkpoint
        if checkpoint is not None and outcomes[index] is None:
            checkpoint(states[index])

    def saved_now(index: int) -> bool:
        every = trials[index].checkpoint_every
        return every > 0 and chunks % every == 0

    try:
        while done < config.n_steps:
            interrupts.check()  # a safe point: the states are committed and no XLA work is in flight
            for index, trial in enumerate(trials):  # the cluster start, per trial on its own rows and seed
                if outcomes[index] is None:
                    params = apply_cluster_init(model, trial.config, states[index].params, trial.rows, done)
                    states[index] = states[index]._replace(params=params)
            take = min(config.log_every, config.n_steps - done)
            new_states, values = runner(list(states), take)
            for index, trial in enumerate(trials):
                if outcomes[index] is not None:  # frozen: carried along, no longer reported
                    states[index] = new_states[index]
                    continue
                try:
                    new_state = accept_chunk(model, trial.config, new_states[index], values[index], done)
                except TrainingDivergedError as error:
                    outcomes[index] = error
                    states[index] = new_states[index]
                    continue
                pieces[index].append(values[index])
                if trial.callback is not None:  # before the commit: an interrupt here checkpoints the previous state
                    trial.callback(done + take, new_state.params, values[index])
                states[index] = new_state
            done, chunks = done + take, chunks + 1
            for index in range(len(trials)):
                if saved_now(index):
                    save(index)
    except KeyboardInterrupt:
        for index in range(len(trials)):
            save(index)
        raise
    for index in range(len(trials)):
        if done > first and not saved_now(index):
            save(index)
    results: list[Outcome] = []
    for index, outcome in enumerate(outcomes):
        if outcome is not None:
            results.append(outcome)
            continue
        trial_pieces = pieces[index]
        history = (
            {name: np.concatenate([p[name] for p in trial_pieces]) for name in trial_pieces[0]} if trial_pieces else {}
        )
        results.append(TrainResult(params=states[index].params, history=history, steps=done))
    return results


def train(
    model: Harmonium,
    params: Params,
    data: Array,
    config: TrainConfig,
    *,
    callback: TrialCallback | None = None,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
    start: TrainState | None = None,
    checkpoint: CheckpointCallback | None = None,
    checkpoint_every: int = 0,
    devices: int | None = None,
) -> TrainResult:
    """Train `params` on `data` up to step `config.n_steps`: the loop of one trial, scanning the plain step.

    Step `t` draws its batch with `fold_in(data stream, t)` and its samples with
    `fold_in(train stream, t)` ([`expfam.experiment.train.streams`][expfam.experiment.train.streams]), so
    training resumed from a state at step `t` gives the same numbers as training straight through, to the
    last bit on one device.

    Args:
        model: the harmonium.
        params: initial parameters (ignored when `start` is given).
        data: training observations `(N,) + data_shape`.
        config: the training section of a run configuration.
        callback: called after every chunk with `(step, params, chunk_history)`.
        weights: `{loss term: weight}` replacing the terms of
            [`loss_weights`][expfam.experiment.train.step.loss_weights] (e.g. to add a third-party objective).
        registry: where loss-term names are looked up.
        optimizer: any `optax.GradientTransformation` (default:
            [`make_optimizer`][expfam.experiment.train.optimizer.make_optimizer]).
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
    check_batch_split(config, devices)
    mesh = device_mesh(devices, "batch")
    sharding = NamedSharding(mesh, partition("batch")) if mesh is not None else None
    # the default optimiser's numbers are its state, so its program is shared by every config of a shape
    spec = step_spec(model, config, weights=weights, registry=registry, optimizer=optimizer, batch_sharding=sharding)
    numbers = step_numbers(config, weights)
    data = jnp.asarray(data)
    state = (
        start
        if start is not None
        else initial_state(params, config, make_optimizer(config) if optimizer is None else optimizer)
    )
    if mesh is not None:  # replicated over the mesh: each device holds the state, the data and the numbers
        data, state, numbers = jax.device_put((data, state, numbers), NamedSharding(mesh, partition()))

    def runner(states: list[TrainState], length: int) -> tuple[list[TrainState], list[dict[str, np.ndarray]]]:
        (state,) = states
        if mesh is not None:  # a cluster start gives new parameters: replicate them too
            state = jax.device_put(state, NamedSharding(mesh, partition()))
        new_state, values = run_chunk(spec, state, data, numbers, length=length)
        return [new_state], [{name: np.asarray(series) for name, series in values.items()}]

    trial = Trial(config, data, callback, checkpoint, checkpoint_every)
    (outcome,) = run_loop(model, [trial], [state], runner)
    if isinstance(outcome, TrainingDivergedError):
        raise outcome
    return outcome


def train_stacked(
    model: Harmonium,
    params: Sequence[Params],
    data: TrialData,
    configs: Sequence[TrainConfig],
    *,
    callbacks: Sequence[TrialCallback | None] | None = None,
    weights: Sequence[Mapping[str, float]] | None = None,
    registry: Registry | None = None,
    starts: Sequence[TrainState | None] | None = None,
    checkpoints: Sequence[CheckpointCallback | None] | None = None,
    checkpoint_every: int | Sequence[int] = 0,
    vectorize: str = "auto",
    devices: int | None = None,
) -> list[Outcome]:
    """Train several trials of one shape together; trial `i` ends as a solo [`train`][expfam.experiment.train.loop.train] of `configs[i]`.

    The one loop with a runner that maps the step's scan over the trials' leading axis
    ([`run_group_chunk`][expfam.experiment.train.chunks.run_group_chunk]).

    Args:
        model: the harmonium (shared).
        params: each trial's initial parameters (ignored for a trial whose `starts` entry is given).
        data: one array every trial trains on, or one array per trial (stacked when they differ).
        configs: each trial's training config; they may differ only in
            `TRIAL_NUMBERS` ([`expfam.experiment.train.step`][expfam.experiment.train.step]).
        callbacks: per trial, called after every chunk with `(step, params, chunk_history)`.
        weights: per trial `{loss term: weight}` (same names in the same order for all).
        registry: where loss-term names are looked up.
        starts: per trial, a state to continue from; all must be at the same step.
        checkpoints: per trial, called with that trial's state as
            [`train`][expfam.experiment.train.loop.train]'s `checkpoint`.
        checkpoint_every: chunks between checkpoints (0: only at the end and on interrupt); one
            number for all trials or one per trial.
        vectorize: `"vmap"`, `"map"` or `"auto"` (`VECTORIZE`, [`expfam.experiment.train.chunks`][expfam.experiment.train.chunks]).
        devices: spread the trials over this many devices (the group is padded with copies
            of its first trial to a multiple of `devices`; their results are dropped).

    Returns:
        Per trial, its [`TrainResult`][expfam.experiment.train.loop.TrainResult], or the
        [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] that froze it (step, term, last finite parameters).

    Raises:
        ConfigurationError: the configs differ in shape, or the arguments' lengths differ.
        KeyboardInterrupt: after every running trial's `checkpoint` got its last complete state.
    """
    count = len(configs)
    per_trial_weights = list(weights) if weights is not None else [None] * count
    check_stackable(configs, per_trial_weights[0])
    for name, given in (("params", params), ("callbacks", callbacks), ("starts", starts), ("weights", weights)):
        if given is not None and len(given) != count:
            raise ConfigurationError(f"got {len(given)} {name} for {count} trials; give one per trial", offending=name)
    if weights is not None and len({tuple(w) for w in weights}) > 1:
        raise ConfigurationError(
            "the trials' loss terms differ; stacked trials weight the same terms", offending="weights"
        )
    check_block_schedule(configs[0], model.block_names)
    shared_array, shared = group_data(data, count)
    spec = GroupSpec(
        step=step_spec(model, configs[0], weights=per_trial_weights[0], registry=registry),
        mode=resolve_vectorize(vectorize),
        shared_data=shared,
        devices=devices,
    )
    padding = (-count) % devices if devices is not None and devices > 1 else 0
    trial_numbers = [step_numbers(c, w) for c, w in zip(configs, per_trial_weights, strict=True)]
    numbers = stack(trial_numbers + trial_numbers[:1] * padding)
    if padding and not shared:
        shared_array = jnp.concatenate([shared_array, jnp.repeat(shared_array[:1], padding, axis=0)])
    states = [
        start if start is not None else initial_state(p, c, make_optimizer(c))
        for p, c, start in zip(params, configs, starts if starts is not None else [None] * count, strict=True)
    ]
    if len({int(state.step) for state in states}) > 1:
        steps = sorted({int(state.step) for state in states})
        raise ConfigurationError(f"the trials start at different steps {steps}; resume them separately")
    intervals = [checkpoint_every] * count if isinstance(checkpoint_every, int) else list(checkpoint_every)
    trials = [
        Trial(
            config,
            shared_array if shared else shared_array[index],
            callbacks[index] if callbacks is not None else None,
            checkpoints[index] if checkpoints is not None else None,
            intervals[index],
        )
        for index, config in enumerate(configs)
    ]

    def runner(states: list[TrainState], length: int) -> tuple[list[TrainState], list[dict[str, np.ndarray]]]:
        new_states, traced = run_group_chunk(
            spec, stack(states + states[:1] * padding), shared_array, numbers, length=length
        )
        values = {name: np.asarray(series) for name, series in traced.items()}
        return (
            [unstack(new_states, index) for index in range(count)],
            [{name: series[index] for name, series in values.items()} for index in range(count)],
        )

    return run_loop(model, trials, states, runner)


__all__ = [
    "CheckpointCallback",
    "Outcome",
    "Runner",
    "TrainResult",
    "Trial",
    "TrialCallback",
    "TrialData",
    "run_loop",
    "train",
    "train_stacked",
]
