r"""The optimiser of a run: Adam (AdamW) with a learning-rate warmup, and the block schedule's hold and scale.

$$
\eta_t = \eta \cdot \min(1, t / T_\text{warmup})\quad(\eta_t = \eta \text{ when } T_\text{warmup} = 0)
$$

The learning rate, its warmup length and the weight decay are optimiser *state*
(`optax.inject_hyperparams`), not constants of the compiled step, so every trial of a stacked
group carries its own ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]).

The block schedule (`[train] block_schedule`, [collapse.md](../collapse.md)) and the per-block
learning rates (`[train] block_learning_rates`) are transformations chained after Adam, each restricted
to its blocks by `optax.masked`: `optax.scale` multiplies a block's Adam steps by its factor, and
[`zero_before`][expfam.experiment.train.optimizer.zero_before] sets them to zero before the block's start
step. Both find the blocks by their names (`likelihood/blocks/NAME`), never by position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig
from expfam.family import Array
from expfam.model import Params
from expfam.objective import warmup


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


def warmed_adam(config: TrainConfig) -> optax.GradientTransformation:
    """Adam (AdamW when `weight_decay > 0`) with a linear learning-rate warmup, then constant (module docstring).

    Its three numbers are `optax.inject_hyperparams` state, so one compiled step serves every learning rate.
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


def block_values(values: Mapping[str, Any], default: Any) -> Callable[[Any], Any]:
    """A function of a parameter tree giving `values[NAME]` on every leaf under `likelihood/blocks/NAME`
    and `default` on every other leaf: the blocks are found by name, for any parameter tree."""

    def label(tree: Any) -> Any:
        def value(path: tuple[Any, ...], _: Any) -> Any:
            keys = [str(getattr(entry, "key", "")) for entry in path[:3]]
            named = keys[:2] == ["likelihood", "blocks"] and len(keys) == 3 and keys[2] in values
            return values[keys[2]] if named else default

        return jax.tree_util.tree_map_with_path(value, tree)

    return label


def block_mask(names: frozenset[str]) -> Callable[[Any], Any]:
    """The `optax.masked` mask of the interaction blocks `names`: `True` on their leaves, `False` elsewhere."""
    return block_values(dict.fromkeys(names, True), False)


class HoldState(NamedTuple):
    """The state of [`zero_before`][expfam.experiment.train.optimizer.zero_before]: the number of updates seen so far (the step)."""

    step: Array


def zero_before(starts: Callable[[Any], Any]) -> optax.GradientTransformation:
    r"""Zero each update before its start step: $u_t \leftarrow u_t \cdot \mathbb 1[t \ge \text{start}]$.

    `starts(updates)` gives the start step of each leaf (a tree of the updates' structure). One step
    counter serves every start. The zeroing is an elementwise select (`jnp.where`), which XLA fuses into
    the optimiser's own elementwise pass; `optax.transforms.conditionally_mask` would do the same with a
    `lax.cond`, whose branches materialise the updates and so change the rounding of the fused update
    (measured: other bits on the full model with a block schedule).
    """

    def init(params: Any) -> HoldState:
        return HoldState(step=jnp.zeros((), jnp.int32))

    def update(updates: Any, state: HoldState, params: Any = None) -> tuple[Any, HoldState]:
        held = jax.tree.map(
            lambda update, start: jnp.where(state.step >= start, update, jnp.zeros_like(update)),
            updates,
            starts(updates),
        )
        return held, HoldState(step=optax.safe_int32_increment(state.step))

    return optax.GradientTransformation(init, update)


def hold_blocks(starts: Mapping[str, int]) -> optax.GradientTransformation:
    r"""Zero the updates of each interaction block `name` before step `starts[name]`.

    [`zero_before`][expfam.experiment.train.optimizer.zero_before] masked to the named blocks by
    `optax.masked`. Chained after Adam, so the block's Adam moments keep following its gradient while it
    is held and its first update is of the usual size. Other parameters pass through unchanged.
    """
    return optax.masked(zero_before(block_values(starts, 0)), block_mask(frozenset(starts)))


def scale_blocks(factors: Mapping[str, float]) -> optax.GradientTransformation:
    r"""Multiply the updates of each interaction block `name` by `factors[name]` (`optax.scale`, masked to it).

    Chained after Adam, `u_t[\text{block}] \leftarrow \text{factor}\cdot u_t[\text{block}]` is a
    per-block learning rate `factor · learning_rate` (Adam's step is scale-free in the gradient,
    so scaling the gradient instead would do nothing). Other parameters pass through unchanged.
    """
    scales = [optax.masked(optax.scale(factor), block_mask(frozenset({name}))) for name, factor in factors.items()]
    return scales[0] if len(scales) == 1 else optax.chain(*scales)


def check_block_schedule(config: TrainConfig, block_names: tuple[str, ...]) -> None:
    """Every block that the block schedule or the block learning rates name is one of the model's
    `block_names` (else a one-line error).

    Raises:
        ConfigurationError: naming the unknown block and the model's blocks.
    """
    for key, names in (("block_schedule", config.block_starts), ("block_learning_rates", config.block_factors)):
        for name in names:
            if name not in block_names:
                raise ConfigurationError(
                    f"[train] {key} names block {name!r}, which the model does not have; "
                    f"its blocks are {', '.join(block_names)} (e.g. --block full --block-schedule xyk:1000,xk:1000)",
                    offending=key,
                )


def delayed_blocks(config: TrainConfig) -> dict[str, int]:
    """`{block: start step}` of the blocks that `TrainConfig.block_schedule` starts after step 0."""
    return {name: start for name, start in config.block_starts.items() if start > 0}


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The run's optimiser: [`warmed_adam`][expfam.experiment.train.optimizer.warmed_adam], followed by
    [`scale_blocks`][expfam.experiment.train.optimizer.scale_blocks] when blocks have their own learning rates
    and by [`hold_blocks`][expfam.experiment.train.optimizer.hold_blocks] when the block schedule starts a
    block after step 0 (plain Adam otherwise, so runs without them keep their optimiser state)."""
    adam = warmed_adam(config)
    factors = {name: factor for name, factor in config.block_factors.items() if factor != 1.0}
    delayed = delayed_blocks(config)
    parts = [adam, *([scale_blocks(factors)] if factors else []), *([hold_blocks(delayed)] if delayed else [])]
    return optax.chain(*parts) if len(parts) > 1 else adam


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


__all__ = [
    "HoldState",
    "block_mask",
    "block_values",
    "check_block_schedule",
    "delayed_blocks",
    "hold_blocks",
    "make_optimizer",
    "scale_blocks",
    "scheduled_params",
    "warmed_adam",
    "zero_before",
]
