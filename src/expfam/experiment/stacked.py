r"""Stacked training: many trials of one shape in one compiled program (docs/stacking.md).

Trials that share every shape (model, data shape, batch size, sample counts, number of steps,
loss terms) and differ only in numbers — learning rate and its warmup, loss-term weights, KL and
conjugation warmup lengths, seed — train together: parameters, optimiser state and keys carry a
leading trial axis, and the per-step function of the solo trainer
([`expfam.experiment.training.make_step`][expfam.experiment.training.make_step]) is mapped over it with `jax.vmap`:

$$
\text{state}^{(i)}_{t+1} = \text{step}\big(\text{numbers}^{(i)}, \text{data}^{(i)}, \text{state}^{(i)}_t\big),
\qquad i = 1..T,
$$

where `numbers` holds the loss weights and warmups and the optimiser state holds the
learning rate (`optax.inject_hyperparams`), so one compilation serves all of them. Each trial
starts from the state a solo run of its seed starts from, so its numbers are the solo run's
(to float32 rounding).

A trial whose loss, a term or its parameters turn non-finite is frozen at its last finite
parameters (its step and term are recorded as a
[`TrainingDivergedError`][expfam.errors.TrainingDivergedError]); the others go on.

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

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.errors import ConfigurationError, TrainingDivergedError
from expfam.experiment.config import TrainConfig
from expfam.experiment.latent_kmeans import apply_cluster_init
from expfam.experiment.training import (
    CheckpointCallback,
    Chunk,
    Step,
    StepNumbers,
    TrainResult,
    TrainState,
    accept_chunk,
    cached_program,
    device_mesh,
    initial_state,
    make_optimizer,
    partition,
    step_numbers,
    step_shape,
)
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.plugins import Registry

#: `callback(step, params, chunk_history)` of one trial, as [`expfam.experiment.training.train`][expfam.experiment.training.train]'s.
TrialCallback = Callable[[int, Params, dict[str, np.ndarray]], None]
#: One array every trial trains on, or one per trial.
TrialData = Array | np.ndarray | Sequence[Array | np.ndarray]
#: What [`train_stacked`][expfam.experiment.stacked.train_stacked] returns per trial: its result, or the error that froze it.
Outcome = TrainResult | TrainingDivergedError


def stack(trees: Sequence[Any]) -> Any:
    """One pytree whose leaves carry a leading axis over `trees` (all of one structure)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Member `index` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


#: How a stacked chunk runs its trials: `"vmap"` batches them into wide kernels (the win on a
#: GPU; float32 rounding differs from a solo run's, and Adam amplifies it over many steps),
#: `"map"` runs them one after another inside one program (`jax.lax.map`: bit-for-bit a solo
#: run's numbers; one compilation and one dispatch per chunk for the group), `"auto"`: `"map"`
#: on a CPU, `"vmap"` elsewhere.
VECTORIZE: tuple[str, ...] = ("auto", "vmap", "map")


def resolve_vectorize(vectorize: str) -> str:
    """`"vmap"` or `"map"` for `vectorize` (`"auto"`: `"map"` on a CPU backend, else `"vmap"`)."""
    if vectorize not in VECTORIZE:
        raise ConfigurationError(
            f"vectorize must be one of {', '.join(VECTORIZE)}, got {vectorize!r}", offending=vectorize
        )
    if vectorize == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return vectorize


def make_stacked_chunk(
    model: Harmonium,
    config: TrainConfig,
    *,
    shared_data: bool = True,
    vectorize: str = "auto",
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    devices: int | None = None,
) -> Chunk:
    """A jitted `chunk(states, data, numbers, length)`: [`make_step`][expfam.experiment.training.make_step] over trials.

    `states` and `numbers` carry a leading trial axis; `data` too unless `shared_data`
    (then every trial draws its batches from the same array). `vectorize` (`VECTORIZE`)
    maps the solo scan over the trial axis with `jax.vmap` or `jax.lax.map`. Cached
    per shape, like the solo chunk; each group size compiles once. `devices > 1` spreads the
    trials over that many devices (`jax.shard_map` over the trial axis; the group size must
    be a multiple of `devices`): each device runs its own trials.
    """
    mode = resolve_vectorize(vectorize)
    data_axis = None if shared_data else 0
    mesh = device_mesh(devices, "trials")

    def build(step: Step) -> Chunk:
        def one(state: TrainState, data: Array, numbers: StepNumbers, length: int) -> Any:
            return jax.lax.scan(functools.partial(step, numbers, data), state, None, length=length)

        def local(
            states: TrainState, data: Array, numbers: StepNumbers, length: int
        ) -> tuple[TrainState, dict[str, Array]]:
            result: tuple[TrainState, dict[str, Array]]
            if mode == "vmap":
                result = jax.vmap(functools.partial(one, length=length), in_axes=(0, data_axis, 0))(
                    states, data, numbers
                )
            elif shared_data:
                result = jax.lax.map(lambda member: one(member[0], data, member[1], length), (states, numbers))
            else:
                result = jax.lax.map(
                    lambda member: one(member[0], member[1], member[2], length), (states, data, numbers)
                )
            return result

        @functools.partial(jax.jit, static_argnames="length")
        def chunk(
            states: TrainState, data: Array, numbers: StepNumbers, length: int
        ) -> tuple[TrainState, dict[str, Array]]:
            if mesh is None:
                return local(states, data, numbers, length)
            trials = partition("trials")
            spread = _shard_map(
                functools.partial(local, length=length),
                mesh=mesh,
                in_specs=(trials, partition() if shared_data else trials, trials),
                out_specs=(trials, trials),
            )
            result: tuple[TrainState, dict[str, Array]] = spread(states, data, numbers)
            return result

        return chunk

    kind = f"stacked-{mode}-{'shared' if shared_data else 'per-trial'}-data"
    return cached_program(kind, model, config, weights, registry, None, build, devices=devices)


def _shard_map(function: Callable[..., Any], *, mesh: Any, in_specs: Any, out_specs: Any) -> Callable[..., Any]:
    """`jax.shard_map` without replication checks; on JAX releases before it was public, the
    experimental one (the package's floor is `jax>=0.4.30`)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    experimental = importlib.import_module("jax.experimental.shard_map")
    spread: Callable[..., Any] = experimental.shard_map(
        function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False
    )
    return spread


def check_stackable(configs: Sequence[TrainConfig], weights: Mapping[str, float] | None = None) -> None:
    """Raise a [`ConfigurationError`][expfam.errors.ConfigurationError] unless every config has the first one's step shape."""
    if not configs:
        raise ConfigurationError("no trials to train; give at least one training config", offending=configs)
    first = step_shape(configs[0], weights)
    for index, config in enumerate(configs[1:], 1):
        if step_shape(config, weights) != first:
            raise ConfigurationError(
                f"trial {index} cannot be stacked with trial 0: they differ in more than the per-trial numbers "
                "(learning rate, warmups, loss weights, seed); train them in separate groups",
                offending=index,
            )


def _group_data(data: TrialData, count: int) -> tuple[Array, bool]:
    """The data argument of the stacked chunk and whether it is shared by every trial."""
    if not isinstance(data, (list, tuple)):
        return jnp.asarray(data), True
    if len(data) != count:
        raise ConfigurationError(f"got {len(data)} data arrays for {count} trials; give one per trial, or one shared")
    arrays = [np.asarray(item) for item in data]
    if all(array is arrays[0] or np.array_equal(array, arrays[0]) for array in arrays[1:]):
        return jnp.asarray(arrays[0]), True
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ConfigurationError(
            f"the trials' data arrays differ in shape ({', '.join(map(str, sorted(shapes)))}); "
            "trials stack only over data of one shape"
        )
    return jnp.asarray(np.stack(arrays)), False


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
    """Train several trials of one shape together; trial `i` ends as a solo [`train`][expfam.experiment.training.train] of `configs[i]`.

    Args:
        model: the harmonium (shared).
        params: each trial's initial parameters (ignored for a trial whose `starts` entry is given).
        data: one array every trial trains on, or one array per trial (stacked when they differ).
        configs: each trial's training config; they may differ only in `TRIAL_NUMBERS`.
        callbacks: per trial, called after every chunk with `(step, params, chunk_history)`.
        weights: per trial `{loss term: weight}` (same names in the same order for all).
        registry: where loss-term names are looked up.
        starts: per trial, a state to continue from; all must be at the same step.
        checkpoints: per trial, called with that trial's state as
            [`train`][expfam.experiment.training.train]'s `checkpoint`.
        checkpoint_every: chunks between checkpoints (0: only at the end and on interrupt); one
            number for all trials or one per trial.
        vectorize: `"vmap"`, `"map"` or `"auto"` (`VECTORIZE`).
        devices: spread the trials over this many devices (the group is padded with copies
            of its first trial to a multiple of `devices`; their results are dropped).

    Returns:
        Per trial, its [`TrainResult`][expfam.experiment.training.TrainResult], or the
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
    config = configs[0]
    shared_array, shared = _group_data(data, count)
    chunk = make_stacked_chunk(
        model,
        config,
        shared_data=shared,
        vectorize=vectorize,
        weights=per_trial_weights[0],
        registry=registry,
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
    steps = {int(state.step) for state in states}
    if len(steps) > 1:
        raise ConfigurationError(f"the trials start at different steps {sorted(steps)}; resume them separately")
    callbacks = list(callbacks) if callbacks is not None else [None] * count
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * count
    intervals = [checkpoint_every] * count if isinstance(checkpoint_every, int) else list(checkpoint_every)
    outcomes: list[Outcome | None] = [None] * count
    pieces: list[list[dict[str, np.ndarray]]] = [[] for _ in range(count)]
    done = first = steps.pop()
    chunks = 0

    def save(index: int) -> None:
        save_to = checkpoints[index]
        if save_to is not None and outcomes[index] is None:
            save_to(states[index])

    try:
        while done < config.n_steps:
            for index in range(count):  # the cluster initialisation, per trial on its own rows and seed
                if outcomes[index] is None:
                    rows = shared_array if shared else shared_array[index]
                    params_now = apply_cluster_init(model, configs[index], states[index].params, rows, done)
                    states[index] = states[index]._replace(params=params_now)
            take = min(config.log_every, config.n_steps - done)
            new_states, traced = chunk(stack(states + states[:1] * padding), shared_array, numbers, length=take)
            values = {name: np.asarray(series) for name, series in traced.items()}
            for index in range(count):
                new_state = unstack(new_states, index)
                if outcomes[index] is not None:  # frozen: carried along, no longer reported
                    states[index] = new_state
                    continue
                piece = {name: series[index] for name, series in values.items()}
                try:
                    new_state = accept_chunk(model, config, new_state, piece, done)
                except TrainingDivergedError as error:
                    outcomes[index] = error
                    states[index] = new_state
                    continue
                pieces[index].append(piece)
                callback = callbacks[index]
                if callback is not None:
                    callback(done + take, new_state.params, piece)
                states[index] = new_state
            done, chunks = done + take, chunks + 1
            for index in range(count):
                if intervals[index] > 0 and chunks % intervals[index] == 0:
                    save(index)
    except KeyboardInterrupt:
        for index in range(count):
            save(index)
        raise
    for index in range(count):
        if done > first and not (intervals[index] > 0 and chunks % intervals[index] == 0):
            save(index)
    results: list[Outcome] = []
    for index in range(count):
        outcome = outcomes[index]
        if outcome is not None:
            results.append(outcome)
            continue
        trial_pieces = pieces[index]
        history = (
            {name: np.concatenate([p[name] for p in trial_pieces]) for name in trial_pieces[0]} if trial_pieces else {}
        )
        results.append(TrainResult(params=states[index].params, history=history, steps=done))
    return results


__all__ = [
    "VECTORIZE",
    "Outcome",
    "TrialCallback",
    "check_stackable",
    "make_stacked_chunk",
    "resolve_vectorize",
    "stack",
    "train_stacked",
    "unstack",
]
