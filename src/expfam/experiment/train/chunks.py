r"""Chunks: `length` training steps in one `jax.lax.scan`, compiled once per static step spec.

A chunk runs the one step ([`make_step`][expfam.experiment.train.step.make_step]) `length` times
between host callbacks, so Python is not paid per step. For one trial it scans the plain step; for a
stacked group of trials of one shape it maps that scan over the trials' leading axis:

$$
\text{state}^{(i)}_{t+1} = \text{step}\big(\text{numbers}^{(i)}, \text{data}^{(i)}, \text{state}^{(i)}_t\big),
\qquad i = 1..T.
$$

A run of one trial never goes through the trial axis: a group of one would compile a different
program, whose float rounding need not be the solo program's.

The program cache is `jax.jit`'s own. [`run_chunk`][expfam.experiment.train.chunks.run_chunk] and
[`run_group_chunk`][expfam.experiment.train.chunks.run_group_chunk] take the step spec
([`StepSpec`][expfam.experiment.train.step.StepSpec], a hashable frozen dataclass) and the chunk
length as static arguments, so runs with equal specs (the same model and step shape, differing only in
per-trial numbers) share one compiled program, and nothing is keyed on object ids. The cache is
bounded by JAX: its dispatch cache and its lowering and compilation caches are least-recently-used
caches of fixed capacity (thousands of entries), so a process that trains ever new shapes keeps a
bounded number of programs, each entry keeping its spec (model, registry, optimiser) alive until it is
dropped. `jax.clear_caches()` empties them (the test suite calls it when a process runs short of memory mappings).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding

from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.devices import device_mesh, partition, shard_map
from expfam.experiment.train.step import StepNumbers, StepSpec, TrainState, make_step, step_shape, step_spec
from expfam.family import Array
from expfam.model import Harmonium
from expfam.plugins import Registry

#: How a stacked chunk runs its trials: `"vmap"` batches them into wide kernels (the win on a
#: GPU; float32 rounding differs from a solo run's, and Adam amplifies it over many steps),
#: `"map"` runs them one after another inside one program (`jax.lax.map`: bit-for-bit a solo
#: run's numbers; one compilation and one dispatch per chunk for the group), `"auto"`: `"map"`
#: on a CPU, `"vmap"` elsewhere.
VECTORIZE: tuple[str, ...] = ("auto", "vmap", "map")


def resolve_vectorize(vectorize: str) -> str:
    """`"vmap"` or `"map"` for `vectorize` (`"auto"`: `"map"` on a CPU backend, else `"vmap"`).

    Raises:
        ConfigurationError: `vectorize` is not one of `VECTORIZE`.
    """
    if vectorize not in VECTORIZE:
        raise ConfigurationError(
            f"vectorize must be one of {', '.join(VECTORIZE)}, got {vectorize!r}", offending=vectorize
        )
    if vectorize == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return vectorize


@functools.partial(jax.jit, static_argnames=("spec", "length"))
def run_chunk(
    spec: StepSpec, state: TrainState, data: Array, numbers: StepNumbers, length: int
) -> tuple[TrainState, dict[str, Array]]:
    """`length` steps of one trial from `state`: the new state and each step's loss and term values.

    Compiled once per `(spec, length)` and argument shapes (module docstring); `data` and `numbers`
    are arguments, not constants, so one program serves every run of the spec.
    """
    step = make_step(spec)
    return jax.lax.scan(functools.partial(step, numbers, data), state, None, length=length)


@dataclass(frozen=True)
class GroupSpec:
    """The static spec of a stacked group's chunk: the step's, how the trials run, and over which devices.

    Attributes:
        step: the trials' shared [`StepSpec`][expfam.experiment.train.step.StepSpec].
        mode: `"vmap"` or `"map"` (`VECTORIZE`, resolved).
        shared_data: every trial draws from one data array (else one per trial, stacked).
        devices: spread the trials over this many devices (`None` or 1: one).
    """

    step: StepSpec
    mode: str
    shared_data: bool
    devices: int | None = None


@functools.partial(jax.jit, static_argnames=("spec", "length"))
def run_group_chunk(
    spec: GroupSpec, states: TrainState, data: Array, numbers: StepNumbers, length: int
) -> tuple[TrainState, dict[str, Array]]:
    """`length` steps of every trial of a group: the one step's scan mapped over the trials' leading axis.

    `states` and `numbers` carry a leading trial axis; `data` too unless `spec.shared_data`. With
    `spec.devices > 1` the trials are spread over that many devices (`jax.shard_map` over the trial
    axis; the group size must be a multiple of it). Compiled once per `(spec, length)` and group size.
    """
    step = make_step(spec.step)
    data_axis = None if spec.shared_data else 0

    def one(state: TrainState, data: Array, numbers: StepNumbers) -> tuple[TrainState, dict[str, Array]]:
        return jax.lax.scan(functools.partial(step, numbers, data), state, None, length=length)

    def local(states: TrainState, data: Array, numbers: StepNumbers) -> tuple[TrainState, dict[str, Array]]:
        result: tuple[TrainState, dict[str, Array]]
        if spec.mode == "vmap":
            result = jax.vmap(one, in_axes=(0, data_axis, 0))(states, data, numbers)
        elif spec.shared_data:
            result = jax.lax.map(lambda member: one(member[0], data, member[1]), (states, numbers))
        else:
            result = jax.lax.map(lambda member: one(member[0], member[1], member[2]), (states, data, numbers))
        return result

    mesh = device_mesh(spec.devices, "trials")
    if mesh is None:
        return local(states, data, numbers)
    trials = partition("trials")
    spread = shard_map(
        local,
        mesh=mesh,
        in_specs=(trials, partition() if spec.shared_data else trials, trials),
        out_specs=(trials, trials),
    )
    result: tuple[TrainState, dict[str, Array]] = spread(states, data, numbers)
    return result


@dataclass(frozen=True)
class Chunk:
    """A chunk program bound to its spec: `chunk(state, data, numbers, length)` runs `length` steps.

    `chunk.lower(state, data, numbers, length)` is the program's `jax.jit` lowering (for its compiled
    text, cost and memory analyses).
    """

    program: Any
    spec: StepSpec | GroupSpec

    def __call__(
        self, state: TrainState, data: Array, numbers: StepNumbers, length: int
    ) -> tuple[TrainState, dict[str, Array]]:
        result: tuple[TrainState, dict[str, Array]] = self.program(self.spec, state, data, numbers, length=length)
        return result

    def lower(self, state: TrainState, data: Array, numbers: StepNumbers, length: int) -> Any:
        """The lowered program for these arguments (`.compile()` it for its analyses)."""
        return self.program.lower(self.spec, state, data, numbers, length=length)


def make_chunk(
    model: Harmonium,
    config: TrainConfig,
    *,
    weights: Mapping[str, float] | None = None,
    registry: Registry | None = None,
    optimizer: optax.GradientTransformation | None = None,
    devices: int | None = None,
) -> Chunk:
    """[`run_chunk`][expfam.experiment.train.chunks.run_chunk] bound to the spec of `model` and `config`:
    `chunk(state, data, numbers, length)`.

    `numbers` is [`step_numbers`][expfam.experiment.train.step.step_numbers] of the config; `optimizer`
    replaces [`make_optimizer`][expfam.experiment.train.optimizer.make_optimizer]'s Adam (any
    `optax.GradientTransformation`); `devices > 1` splits each batch over that many devices.
    """
    mesh = device_mesh(devices, "batch")
    sharding = NamedSharding(mesh, partition("batch")) if mesh is not None else None
    spec = step_spec(model, config, weights=weights, registry=registry, optimizer=optimizer, batch_sharding=sharding)
    return Chunk(run_chunk, spec)


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
    """[`run_group_chunk`][expfam.experiment.train.chunks.run_group_chunk] bound to a group's spec:
    `chunk(states, data, numbers, length)`, states and numbers with a leading trial axis.

    `vectorize` is one of `VECTORIZE`; `devices > 1` spreads the trials over that many devices.
    """
    spec = GroupSpec(
        step=step_spec(model, config, weights=weights, registry=registry),
        mode=resolve_vectorize(vectorize),
        shared_data=shared_data,
        devices=devices,
    )
    return Chunk(run_group_chunk, spec)


def stack(trees: Sequence[Any]) -> Any:
    """One pytree whose leaves carry a leading axis over `trees` (all of one structure)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
    """Member `index` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def check_stackable(configs: Sequence[TrainConfig], weights: Any = None) -> None:
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


def group_data(data: Any, count: int) -> tuple[Array, bool]:
    """The data argument of the group's chunk and whether every trial shares it.

    `data` is one array every trial trains on, or a list or tuple of one per trial (stacked when they differ).

    Raises:
        ConfigurationError: the count of arrays is not `count`, or the arrays differ in shape.
    """
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


__all__ = [
    "VECTORIZE",
    "Chunk",
    "GroupSpec",
    "check_stackable",
    "group_data",
    "make_chunk",
    "make_stacked_chunk",
    "resolve_vectorize",
    "run_chunk",
    "run_group_chunk",
    "stack",
    "unstack",
]
