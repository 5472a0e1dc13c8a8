"""Checks a run must pass before any work: the observable can model pixels, the sizes fit the
numeric types and the machine's memory, and a saved run's files agree with each other.

[`check_observable_shape`][expfam.experiment.checks.check_observable_shape] and
[`check_memory`][expfam.experiment.checks.check_memory] run in
[`expfam.experiment.pipeline.prepare_run`][expfam.experiment.pipeline.prepare_run], before the run directory
is touched; [`check_run_matches`][expfam.experiment.checks.check_run_matches] runs before a saved run is
evaluated, resumed or loaded.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import resolve_blocks
from expfam.errors import ConfigurationError
from expfam.experiment.config import MAX_INT32, RunConfig
from expfam.experiment.runs import RunDirectoryError, read_model_spec
from expfam.experiment.train.cluster_start import require_cluster_biases
from expfam.model import Harmonium
from expfam.plugins import Registry, get_registry


def parse_blocks(text: str) -> str | list[str]:
    """A block-set or block name as it is, or `"xy,xk"` as `["xy", "xk"]`."""
    if "," not in text:
        return text.strip()
    return [name.strip() for name in text.split(",") if name.strip()]


def pixel_families(registry: Registry) -> list[str]:
    """Families that can be the observable of pixel data: one value per pixel (`data_shape == (D,)`).

    A family that cannot be built without options is listed (it is checked when the run is prepared).
    """
    names = []
    for name in registry.names("families"):
        try:
            fits = tuple(registry.family(name)(4).data_shape) == (4,)
        except Exception:  # needs options: cannot tell here
            fits = True
        if fits:
            names.append(name)
    return names


def check_observable_shape(config: RunConfig, model: Harmonium, n_features: int, registry: Registry) -> None:
    """The observable family must model one value per pixel: its data shape is `(D,)`.

    Raises:
        ConfigurationError: e.g. `categorical`, which models one category per observation.
    """
    shape = tuple(model.observable.data_shape)
    if shape != (n_features,):
        raise ConfigurationError(
            f"observable {config.model.observable!r} built for {n_features} pixels models data of shape {shape}, "
            f"not one value per pixel ({n_features},); choose one of {', '.join(pixel_families(registry))}",
            offending=config.model.observable,
        )


def check_cluster_init(config: RunConfig, model: Harmonium, n_rows: int | None = None) -> None:
    """Refuse a cluster start the run cannot make, before any work: `"kmeans"` for a model
    without per-cluster observable biases ([`require_cluster_biases`][expfam.experiment.train.cluster_start.require_cluster_biases]),
    and a KMeans or latent-KMeans start that will run on fewer than `n_clusters` training rows.

    Raises:
        ConfigurationError: naming the start, the row count it needs and the one it has.
    """
    train = config.train
    if train.cluster_init == "kmeans":
        require_cluster_biases(model)
    every = max(1, train.log_every)  # latent KMeans runs at the first chunk boundary at or after its step
    runs = train.cluster_init == "kmeans" or (
        train.cluster_init == "latent_kmeans" and -(-train.cluster_init_step // every) * every < train.n_steps
    )
    if runs and n_rows is not None and n_rows < model.n_clusters:
        raise ConfigurationError(
            f"cluster_init {train.cluster_init!r} needs at least n_clusters = {model.n_clusters} training rows, "
            f"got {n_rows}; use cluster_init 'random', fewer clusters or more data",
            offending="cluster_init",
        )


def memory_limit_bytes() -> int | None:
    """Memory of the device the run trains on (its allocator's limit), else of the host; `None` if unknown."""
    with contextlib.suppress(Exception):
        stats = jax.devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return None


def estimated_bytes(
    config: RunConfig, n_features: int, parameter_shapes: Sequence[tuple[int, ...]] | None = None
) -> tuple[int, int]:
    r"""A lower bound on the memory a run needs, and the size of its largest parameter array.

    With $D$ pixels, $n$ latent units, $K$ clusters and $P$ parameters
    (from `parameter_shapes`, the model's; without them, those of the `full` block set,
    whose largest block holds $D n K$ numbers), parameters, gradients and the two Adam
    moments hold $4P$. A training step holds at least the observable and latent
    parameters of its $B S$ posterior samples and the $K$ cluster parameters of
    each of its $B$ observations, $B (S (D + n) + K n)$ numbers, or
    $S_c (D + n)$ for the conjugation samples; the evaluation
    $B_e (S_{elbo} (D + n) + K n)$, $\lfloor B_e/10 \rfloor (S_{iwae} (D + n) + K n)$ (the
    IWAE bound runs on a tenth of the evaluation batch) or $S_{R^2} (D + n)$. Each number
    takes the default float's bytes (4, or 8 with `jax_enable_x64`). The bound counts only
    arrays a run cannot avoid; the compiled training chunk holds a few times more (254 MB
    against this bound's 96 MB for the full model at the reference MNIST shapes, docs/benchmarks.md).
    Returns `(bytes, largest array)`.
    """
    model, train, evaluation = config.model, config.train, config.evaluate
    d, n, k = n_features, model.n_latent, model.n_clusters
    if parameter_shapes is None:  # the full block set's: xy, xyk, xk, the mixture and the biases
        parameter_shapes = [(d, n), (d, n * (k - 1)), (d, k - 1), (n, k - 1), (n,), (k - 1,), (d,), (n,)]
    sizes = [math.prod(shape) for shape in parameter_shapes]
    samples = d + n
    buffers = max(
        train.batch_size * (train.n_mc_samples * samples + k * n),
        train.n_conj_samples * samples,
        evaluation.batch_size * (evaluation.n_elbo_samples * samples + k * n),
        max(1, evaluation.batch_size // 10) * (evaluation.n_iwae_samples * samples + k * n),
        evaluation.n_r2_samples * samples,
    )
    itemsize = int(np.dtype(jnp.result_type(float)).itemsize)
    return itemsize * (4 * sum(sizes) + buffers), max(sizes, default=0)


def check_memory(
    config: RunConfig,
    n_features: int,
    limit: int | None = None,
    parameter_shapes: Sequence[tuple[int, ...]] | None = None,
) -> None:
    """Refuse sizes the machine cannot hold, before anything is allocated or written.

    `parameter_shapes`: the model's parameter shapes
    ([`parameter_shapes`][expfam.experiment.checks.parameter_shapes]); without them, those of the `full` block
    set at these sizes.

    Raises:
        ConfigurationError: the largest array would exceed 2^31 − 1 numbers, or
            [`estimated_bytes`][expfam.experiment.checks.estimated_bytes] exceeds `limit` (default
            [`memory_limit_bytes`][expfam.experiment.checks.memory_limit_bytes]).
    """
    needed, largest = estimated_bytes(config, n_features, parameter_shapes)
    model, train = config.model, config.train
    sizes = f"n_clusters={model.n_clusters}, n_latent={model.n_latent} and {n_features} pixels"
    fix = "lower n_clusters, n_latent, batch_size, n_mc_samples or the [evaluate] sample counts"
    if largest > MAX_INT32:
        raise ConfigurationError(
            f"{sizes} make a parameter array of {largest} numbers, more than {MAX_INT32} (2^31 − 1, the largest "
            f"int32 index); {fix}",
            offending="n_clusters",
        )
    limit = memory_limit_bytes() if limit is None else limit
    if limit is not None and needed > limit:
        raise ConfigurationError(
            f"{sizes} with batch_size={train.batch_size} need at least {needed / 2**30:.3g} GiB, more than the "
            f"{limit / 2**30:.3g} GiB of this machine's memory; {fix}",
            offending="n_clusters",
        )


def parameter_shapes(model: Harmonium) -> list[tuple[int, ...]]:
    """The shapes of `model`'s parameters (mixture, observable bias, blocks, ρ_y), without allocating them."""
    mixture = model.mixture.param_shapes()
    blocks = [tuple(block.param_shape()) for block in model.blocks]
    return [*mixture.values(), tuple(model.observable.param_shape), *blocks, tuple(mixture["b_y"])]  # last: ρ_y


def _shapes(tree: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[int, ...]]:
    """`{"a/b": shape}` of a nested mapping of arrays (or of shape structs)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            shapes.update(_shapes(value, f"{prefix}{name}/"))
        else:
            shapes[f"{prefix}{name}"] = tuple(int(size) for size in np.shape(value))
    return shapes


def check_run_matches(
    run_dir: Path,
    config: RunConfig,
    params: Mapping[str, Any],
    model: Harmonium,
    registry: Registry | None = None,
    *,
    source: str = "params.npz",
) -> None:
    """Refuse a run whose `config.toml`, `model.json` and `params.npz` disagree (edited or damaged files).

    `model.json` (written when the run was trained) must give the same observable,
    options, sizes and blocks as `config.toml`; every array of `params` must
    exist with the shape the model of `config.toml` initialises. `source`: the file
    `params` was read from, named in the messages (`checkpoint.npz` when resuming).

    Raises:
        RunDirectoryError: naming the first disagreement and the fix.
    """
    fix = f"config.toml or {source} was edited or damaged; restore the run's files or train it again"
    try:
        spec: dict[str, Any] | None = read_model_spec(run_dir)
    except RunDirectoryError:  # runs written before model.json existed have none
        spec = None
    if spec is not None:
        recorded = {key: spec.get(key) for key in ("observable", "n_latent", "n_clusters", "n_trials")}
        recorded["blocks"] = spec.get("blocks")
        current = {
            "observable": config.model.observable,
            "n_latent": config.model.n_latent,
            "n_clusters": config.model.n_clusters,
            "n_trials": config.model.n_trials,
            "blocks": list(resolve_blocks(parse_blocks(config.model.block), registry or get_registry())),
        }
        for key, value in recorded.items():
            if value != current[key]:
                raise RunDirectoryError(
                    f"{run_dir}: config.toml gives {key} = {current[key]!r} but the run was trained with "
                    f"{value!r} (model.json); config.toml was edited after training — restore it, or train a new "
                    "run with the new setting",
                    offending=key,
                )
    expected = _shapes(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, model.observable.size))))
    found = _shapes(params)
    for name, shape in expected.items():
        if name not in found:
            raise RunDirectoryError(f"{run_dir}: {source} has no array {name!r}; {fix}", offending=name)
        if found[name] != shape:
            raise RunDirectoryError(
                f"{run_dir}: {source} array {name!r} has shape {found[name]} but the model of "
                f"config.toml needs {shape}; {fix}",
                offending=name,
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise RunDirectoryError(f"{run_dir}: {source} holds unexpected array {extra[0]!r}; {fix}", offending=extra[0])


__all__ = [
    "check_memory",
    "check_observable_shape",
    "check_run_matches",
    "estimated_bytes",
    "memory_limit_bytes",
    "parse_blocks",
    "pixel_families",
]
