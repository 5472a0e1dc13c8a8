r"""The training engine (docs/objectives.md).

One jitted step: draw a batch uniformly with replacement, evaluate the
combined loss, take an optax Adam (or AdamW) step with a learning rate that
rises linearly from 0 over ``lr_warmup_steps`` and then stays constant. Steps
run in :func:`jax.lax.scan` chunks of ``log_every`` steps between host
callbacks, so Python is not paid per step.

A step whose loss, term values or new parameters are not finite is not
applied: the chunk keeps the last finite parameters and records the step, and
:func:`train` raises :class:`~expfam.errors.TrainingDivergedError` naming the
step and the offending term.
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

from expfam.errors import ConfigurationError, TrainingDivergedError
from expfam.experiment.config import TrainConfig, parse_block_learning_rates, parse_block_schedule
from expfam.experiment.streams import stream_key
from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, make_loss
from expfam.plugins import Registry


def loss_weights(config: TrainConfig) -> dict[str, float]:
    """The loss terms of a training config: ``{term: weight}`` (docs/objectives.md).

    The named knobs (``conj_weight``, ``entropy_weight``, ...) give the built-in terms;
    ``config.loss_weights`` then sets any registered term by name (a weight of 0 given there drops
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


class HoldState(NamedTuple):
    """The state of :func:`hold_blocks`: the number of updates seen so far (the step)."""

    step: Array


def hold_blocks(starts: Mapping[str, int]) -> optax.GradientTransformation:
    r"""Zero the updates of each interaction block ``name`` before step ``starts[name]``.

    ``u_t[\text{block}] \leftarrow u_t[\text{block}] \cdot \mathbb 1[t \ge \text{start}]``; chained
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
    r"""Multiply the updates of each interaction block ``name`` by ``factors[name]``.

    Chained after Adam, ``u_t[\text{block}] \leftarrow \text{factor}\cdot u_t[\text{block}]`` is a
    per-block learning rate ``factor · learning_rate`` (Adam's step is scale-free in the gradient,
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
    ``block_names`` (else a one-line error).

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
    """``{block: start step}`` of the blocks that :attr:`TrainConfig.block_schedule` starts after step 0."""
    return {name: start for name, start in parse_block_schedule(config.block_schedule).items() if start > 0}


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam (AdamW when ``weight_decay > 0``) with a linear learning-rate warmup, then constant;
    followed by :func:`scale_blocks` when blocks have their own learning rates and by
    :func:`hold_blocks` when the block schedule starts a block after step 0."""
    if config.lr_warmup_steps > 0:
        schedule = optax.linear_schedule(0.0, config.learning_rate, config.lr_warmup_steps)
    else:
        schedule = optax.constant_schedule(config.learning_rate)
    adam = optax.adamw(schedule, weight_decay=config.weight_decay) if config.weight_decay > 0 else optax.adam(schedule)
    factors = {name: f for name, f in parse_block_learning_rates(config.block_learning_rates).items() if f != 1.0}
    delayed = delayed_blocks(config)
    parts = [adam, *([scale_blocks(factors)] if factors else []), *([hold_blocks(delayed)] if delayed else [])]
    return optax.chain(*parts) if len(parts) > 1 else adam


class TrainState(NamedTuple):
    """What the scan carries: parameters, optimiser state, step, keys, and the first bad step (−1: none).

    ``key`` (the training stream: Monte-Carlo samples) and ``data_key`` (the data-order
    stream: batch indices) stay fixed; step ``t`` uses ``fold_in(key, t)`` and
    ``fold_in(data_key, t)``, so every step's randomness is a function of (seed, step).
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

#: Compiled chunks, least recently used first: ``{key: (chunk, (registry, optimizer))}``. The
#: registry and optimizer are kept with their chunk so that their ``id()`` in the key stays theirs.
_CHUNK_CACHE: collections.OrderedDict[tuple[Any, ...], tuple[Chunk, tuple[Any, Any]]] = collections.OrderedDict()
#: How many compiled chunks stay cached; older ones are dropped (a long-lived process that trains
#: many different models, e.g. a grid search, would otherwise keep every compiled program).
CHUNK_CACHE_SIZE = 16


def clear_chunk_cache() -> None:
    """Forget every cached compiled chunk (their memory goes once nothing else holds them)."""
    _CHUNK_CACHE.clear()


def make_chunk(
    model: Harmonium,
    config: TrainConfig,
    *,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
) -> Callable[..., tuple[TrainState, dict[str, Array]]]:
    """A jitted ``chunk(state, data, length)`` running ``length`` steps; returns per-step loss and term values.

    The data is an argument, not a constant, so one compiled chunk serves every
    run with the same model and training settings (the reference runs only set the
    initial key): compiled chunks are cached on that key. ``optimizer`` replaces
    :func:`make_optimizer`'s Adam (any ``optax.GradientTransformation``).
    """
    weights = loss_weights(config) if weights is None else dict(weights)
    cache_key = (
        model,
        dataclasses.replace(config, seed=0),
        tuple(sorted(weights.items())),
        id(registry),
        id(optimizer),
    )
    if cache_key in _CHUNK_CACHE:
        _CHUNK_CACHE.move_to_end(cache_key)
        return _CHUNK_CACHE[cache_key][0]
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    loss_fn = make_loss(model, weights, objective_settings(config), rho_mode=config.rho_mode, registry=registry)

    def step(data: Array, state: TrainState, _: None) -> tuple[TrainState, dict[str, Array]]:
        batch_key = jax.random.fold_in(state.data_key, state.step)
        loss_key = jax.random.fold_in(state.key, state.step)
        index = jax.random.randint(batch_key, (config.batch_size,), 0, data.shape[0])
        batch = data[index]
        (loss, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, loss_key, state.step)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        healthy = (state.bad_step < 0) & jnp.isfinite(loss) & _all_finite(values) & _all_finite(params)

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

    @functools.partial(jax.jit, static_argnames="length")
    def chunk(state: TrainState, data: Array, length: int) -> tuple[TrainState, dict[str, Array]]:
        return jax.lax.scan(functools.partial(step, data), state, None, length=length)

    _CHUNK_CACHE[cache_key] = (chunk, (registry, optimizer))
    while len(_CHUNK_CACHE) > CHUNK_CACHE_SIZE:
        _CHUNK_CACHE.popitem(last=False)
    return chunk


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
    term = bad_terms[0] if bad_terms else ("loss" if not np.isfinite(values["loss"]) else "parameters")
    detail = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
    return TrainingDivergedError(
        f"training diverged at step {bad_step}: term {term!r} is not finite ({detail}); "
        f"the last finite parameters were kept. Lower --learning-rate or the weight of {term!r}",
        step=bad_step,
        term=term,
        last_params=params,
    )


def _store_fitted_correction(model: Harmonium, params: Params, config: TrainConfig, step: int) -> Params:
    """In analytic ρ mode, write the least-squares ``ρ_y`` into the parameters (for evaluation and saving)."""
    key = jax.random.fold_in(stream_key(config.seed, "correction"), step)
    _, rho_y, _ = model.fit_correction(key, params, config.n_conj_samples)
    return {**params, "rho_y": rho_y}


def scheduled_params(params: Params, config: TrainConfig) -> Params:
    """``params`` with every block that the block schedule starts after step 0 set to zero.

    With the blocks ``xyk`` and ``xk`` at zero the full model is the hierarchical one
    (their offsets, adjoints and the cluster correction ``ρ_k`` all vanish), so a
    schedule ``xyk:s,xk:s`` trains the hierarchical model until step ``s``.
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
    """The state at step 0: ``params`` (delayed blocks zeroed by :func:`scheduled_params`), the
    optimiser's initial state and the run's ``train`` and ``data`` streams."""
    params = scheduled_params(params, config)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=stream_key(config.seed, "train"),
        bad_step=-jnp.ones((), jnp.int32),
        data_key=stream_key(config.seed, "data"),
    )


#: ``checkpoint(state)``: called with a complete state to be written (see :mod:`expfam.experiment.checkpoints`).
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
) -> TrainResult:
    """Train ``params`` on ``data`` up to step ``config.n_steps``.

    Step ``t`` draws its batch with ``fold_in(data stream, t)`` and its samples with
    ``fold_in(train stream, t)`` (:mod:`expfam.experiment.streams`), so training
    resumed from a state at step ``t`` gives the same numbers as training
    straight through, to the last bit on one device.

    Args:
        model: the harmonium.
        params: initial parameters (ignored when ``start`` is given).
        data: training observations ``(N,) + data_shape``.
        config: the training section of a run configuration.
        callback: called after every chunk with ``(step, params, chunk_history)``.
        weights: ``{loss term: weight}`` replacing the terms of :func:`loss_weights`
            (e.g. to add a third-party objective).
        registry: where loss-term names are looked up.
        optimizer: any ``optax.GradientTransformation`` (default: :func:`make_optimizer`).
        start: a state to continue from (e.g. a checkpoint); its ``step`` must be a
            multiple of ``config.log_every`` for chunks to line up with an uninterrupted run.
        checkpoint: called with the state every ``checkpoint_every`` chunks, after the
            last chunk, and before re-raising ``KeyboardInterrupt``.
        checkpoint_every: chunks between checkpoints (0: only at the end and on interrupt).

    Returns:
        The final parameters and the per-step history of the steps run here.

    Raises:
        TrainingDivergedError: NaN or inf in the loss, a term or the parameters,
            with the step and the term named and the last finite parameters attached.
        KeyboardInterrupt: Ctrl-C (or SIGTERM turned into it by the caller), after
            ``checkpoint`` was given the last complete state.
    """
    check_block_schedule(config, model.block_names)
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    chunk = make_chunk(model, config, weights=weights, registry=registry, optimizer=optimizer)
    data = jnp.asarray(data)
    state = initial_state(params, config, optimizer) if start is None else start
    pieces: list[dict[str, np.ndarray]] = []
    done = first = int(state.step)
    chunks = 0
    try:
        while done < config.n_steps:
            take = min(config.log_every, config.n_steps - done)
            new_state, values = chunk(state, data, length=take)
            piece = {name: np.asarray(series) for name, series in values.items()}
            bad_step = int(new_state.bad_step)
            if bad_step >= 0:
                raise _diverged(piece, done, bad_step, new_state.params)
            if config.rho_mode == "analytic":
                new_params = _store_fitted_correction(model, new_state.params, config, done + take)
                new_state = new_state._replace(params=new_params)
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
