r"""Preparing a run: every check before any work, the data and the one model spec.

[`prepare_run`][expfam.experiment.prepare.prepare_run] checks a configuration and loads what it names
before any training and before any file is written: value ranges, every registry name, the device count,
the data files, the model's shapes, the data against the observable family's support, the memory and the
cluster start. [`Preparer`][expfam.experiment.prepare.Preparer] does the same for many runs, loading each
data split and building each model once (a stacked group's trials share them).

[`model_spec`][expfam.experiment.prepare.model_spec] is the one description of a run's model: what
[`prepare_run`][expfam.experiment.prepare.prepare_run] builds, what a run directory's `model.json` stores
([`spec_record`][expfam.experiment.prepare.spec_record]) and
[`load_run`][expfam.experiment.runs.trained.load_run] rebuilds
([`spec_from_record`][expfam.experiment.prepare.spec_from_record]), and what the scikit-learn estimator
([`expfam.sklearn`][expfam.sklearn]) builds.

Examples:
    >>> from expfam.experiment.config import RunConfig
    >>> spec = model_spec(RunConfig(), 64, get_registry())
    >>> spec.observable, spec.data_dim, spec.blocks, spec.observable_options
    ('binomial', 64, ('xy',), {'n_trials': 16})
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import ModelSpec, build_model, resolve_blocks
from expfam.data import DataSplit, check_data_for_family, load_dataset
from expfam.errors import ConfigurationError
from expfam.experiment.config import MAX_INT32, RunConfig, validate_config
from expfam.experiment.train.cluster_start import PARTITION_STARTS, require_cluster_biases
from expfam.experiment.train.devices import check_batch_split, check_device_count
from expfam.experiment.train.optimizer import check_block_schedule
from expfam.experiment.train.step import loss_weights
from expfam.model import Harmonium
from expfam.objective import build_objectives
from expfam.plugins import Registry, get_registry


# ----------------------------------------------------------------- names and options
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


def observable_options(config: RunConfig, registry: Registry) -> dict[str, Any]:
    """Options of the observable family: `n_trials` from `[model]` where the family has it, then
    `[model.observable_options]`, each checked against the family's fields.

    Raises:
        ConfigurationError: an option the family does not have (listing the ones it has), or
            `n_trials` given in both places.
    """
    cls = registry.family(config.model.observable)
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    options = {name: getattr(config.model, name) for name in sorted(names - {"size"}) if hasattr(config.model, name)}
    extra = config.model.observable_options.to_dict()
    unknown = sorted(set(extra) - (names - {"size"}))
    if unknown:
        accepted = ", ".join(sorted(names - {"size"})) or "no options"
        raise ConfigurationError(
            f"[model.observable_options]: family {config.model.observable!r} has no option(s) {', '.join(unknown)}; "
            f"it accepts {accepted}",
            offending=unknown,
        )
    clash = sorted(set(extra) & set(options))
    if clash:
        raise ConfigurationError(
            f"[model.observable_options] sets {', '.join(clash)}, which [model] sets already; set it in [model] only",
            offending=clash,
        )
    return {**options, **extra}


def check_loss_weights(config: RunConfig, registry: Registry) -> None:
    r"""Every name of `[train.loss_weights]` is a registered loss term (else the error lists them),
    `elbo_estimator` names a loss term that estimates the ELBO (its class sets `estimates_elbo`), and
    every table of `[train.loss_options]` names a term of the loss and only options that term has.

    Raises:
        UnknownNameError: a name that is not a registered loss term.
        ConfigurationError: an `elbo_estimator` that does not estimate the ELBO (e.g. `conjugation`),
            or options for a term the loss does not use or that the term does not have.
    """
    for name in config.train.loss_weights:
        registry.objective(name)
    estimator = config.train.elbo_estimator
    if not registry.objective(estimator).estimates_elbo:
        estimators = [name for name in registry.names("objectives") if registry.objective(name).estimates_elbo]
        raise ConfigurationError(
            f"--elbo-estimator {estimator!r} is a loss term that does not estimate the ELBO; choose one of "
            f"{', '.join(estimators)} (other terms are added with --loss NAME=WEIGHT)",
            offending=estimator,
        )
    build_objectives(list(loss_weights(config.train)), config.train.loss_options, registry=registry)


# ----------------------------------------------------------------- the model spec
def model_spec(config: RunConfig, data_dim: int, registry: Registry) -> ModelSpec:
    """The one model spec of a run: its `[model]` section for `data_dim` observable coordinates.

    Block-set names are resolved to block names and the observable's options are those of
    [`observable_options`][expfam.experiment.prepare.observable_options], so the spec is what
    [`expfam.builder.build_model`][expfam.builder.build_model] builds and what `model.json` records.

    Raises:
        ConfigurationError, UnknownNameError: an option or name the registry does not know.
    """
    return ModelSpec(
        observable=config.model.observable,
        data_dim=data_dim,
        n_latent=config.model.n_latent,
        n_clusters=config.model.n_clusters,
        blocks=resolve_blocks(parse_blocks(config.model.block), registry),
        observable_options=observable_options(config, registry),
        block_options=config.model.block_options.to_dict(),
    )


def spec_record(spec: ModelSpec) -> dict[str, Any]:
    """The spec's entries of `model.json`, in the file's order (JSON values: lists, dicts)."""
    return {
        "observable": spec.observable,
        "observable_options": dict(spec.observable_options),
        "latent": spec.latent,
        "data_dim": spec.data_dim,
        "n_latent": spec.n_latent,
        "n_clusters": spec.n_clusters,
        "blocks": [spec.blocks] if isinstance(spec.blocks, str) else list(spec.blocks),
        "block_options": {name: dict(options) for name, options in spec.block_options.items()},
    }


def spec_from_record(record: Mapping[str, Any]) -> ModelSpec:
    """The [`ModelSpec`][expfam.builder.ModelSpec] of a `model.json` object (the inverse of
    [`spec_record`][expfam.experiment.prepare.spec_record]).

    Raises:
        KeyError, TypeError, ValueError: a missing or malformed entry.
    """
    return ModelSpec(
        observable=record["observable"],
        observable_options=record.get("observable_options", {}),
        data_dim=int(record["data_dim"]),
        n_latent=int(record["n_latent"]),
        n_clusters=int(record["n_clusters"]),
        blocks=list(record["blocks"]),
        block_options=record.get("block_options", {}),
        latent=record.get("latent", "bernoulli"),
    )


# ----------------------------------------------------------------- preparing runs
@dataclass(frozen=True)
class PreparedRun:
    """A checked configuration with its data and model, ready to train.

    With `[data] validation_fraction > 0`, `split`'s test part is the validation rows
    (what progress and the run's metrics use, for model selection) and `held_out` the
    test split, scored once at the end (`test_*` metrics).
    """

    config: RunConfig
    split: DataSplit
    model: Harmonium
    spec: ModelSpec
    held_out: DataSplit | None = None


def _resolved_data_path(config: RunConfig) -> RunConfig:
    """The configuration with `[data] data` made absolute, so the run can be re-evaluated from anywhere."""
    if not config.data.data:
        return config
    absolute = str(Path(config.data.data).expanduser().resolve())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, data=absolute))


class Preparer:
    """Prepares runs, loading each distinct data split and building each distinct model once.

    A run's split is a function of its `[data]` section, `n_trials` and seed, and its model of
    its `[model]` section and the data's width; runs that share them (a stacked group's trials)
    share one [`DataSplit`][expfam.data.split.DataSplit] and one [`Harmonium`][expfam.model.Harmonium].
    Every check that depends on a run's own numbers runs for each run, in the order of
    [`prepare_run`][expfam.experiment.prepare.prepare_run], so each run fails as it would alone.

    Args:
        registry: where names are looked up (default: the installed plugins).
        devices: the device count each run's batch is split over (checked per run).
        memory: check each run's memory against this machine's
            ([`check_memory`][expfam.experiment.prepare.check_memory]); off where runs train elsewhere.
    """

    def __init__(self, registry: Registry | None = None, devices: int | None = None, *, memory: bool = True) -> None:
        self.registry = registry or get_registry()
        self.devices = devices
        self.memory = memory
        self._splits: dict[Hashable, tuple[DataSplit, DataSplit | None]] = {}
        self._models: dict[Hashable, tuple[ModelSpec, Harmonium]] = {}
        self._checked: set[tuple[Hashable, Hashable]] = set()

    def prepare(self, config: RunConfig) -> PreparedRun:
        """Check `config` and load what it names (see [`prepare_run`][expfam.experiment.prepare.prepare_run]).

        Raises:
            ConfigurationError, UnknownNameError, DataError, SupportError: naming the problem.
        """
        registry, devices = self.registry, self.devices
        validate_config(config)
        config = _resolved_data_path(config)
        observable_options(config, registry)
        blocks = resolve_blocks(parse_blocks(config.model.block), registry)
        check_loss_weights(config, registry)
        check_block_schedule(config.train, blocks)
        check_device_count(devices)
        check_batch_split(config.train, devices)
        registry.dataset(config.data.dataset)
        data_key = (config.data, config.model.n_trials, config.train.seed)
        if data_key not in self._splits:
            self._splits[data_key] = self._load(config)
        split, held_out = self._splits[data_key]
        model_key = (config.model, split.n_features)
        if model_key not in self._models:
            spec = model_spec(config, split.n_features, registry)
            self._models[model_key] = (spec, build_model(spec, registry=registry))
        spec, model = self._models[model_key]
        check_observable_shape(config, model, split.n_features, registry)
        if (data_key, model_key) not in self._checked:
            check_data_for_family(split, model.observable)
            self._checked.add((data_key, model_key))
        if self.memory:
            check_memory(config, split.n_features, parameter_shapes=parameter_shapes(model))
        check_cluster_init(config, model, int(split.x_train.shape[0]))
        return PreparedRun(config=config, split=split, model=model, spec=spec, held_out=held_out)

    def _load(self, config: RunConfig) -> tuple[DataSplit, DataSplit | None]:
        """The run's split (its validation split when it holds one out) and the held-out test split."""
        split = load_dataset(
            config.data.dataset,
            path=config.data.data or None,
            n_trials=config.model.n_trials,
            seed=config.train.seed,
            test_fraction=config.data.test_fraction,
            registry=self.registry,
            options=config.data.options.to_dict(),
        )
        if config.data.validation_fraction > 0:
            return split.validation_split(config.data.validation_fraction, seed=config.train.seed), split
        return split, None


def prepare_run(config: RunConfig, *, registry: Registry | None = None, devices: int | None = None) -> PreparedRun:
    """Check a configuration and load what it names, before any training and before any file is written.

    In order: value ranges; the observable family, the blocks, the loss terms (the ELBO
    estimator by its role) and the dataset in the registry; the device count and the batch
    size's split over `devices`; the data files; the model's shapes; the data against the
    observable family's support; the memory; the cluster start (its model and its row count).

    Raises:
        ConfigurationError, UnknownNameError, DataError, SupportError: naming the problem.
    """
    return Preparer(registry, devices).prepare(config)


# ----------------------------------------------------------------- checks
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
    """Refuse a cluster start the run cannot make, before any work: `"kmeans"` or `"spectral"` for a model
    without per-cluster observable biases ([`require_cluster_biases`][expfam.experiment.train.cluster_start.require_cluster_biases]),
    and a partition or latent-KMeans start that will run on fewer than `n_clusters` training rows.

    Raises:
        ConfigurationError: naming the start, the row count it needs and the one it has.
    """
    train = config.train
    if train.cluster_init in PARTITION_STARTS:
        require_cluster_biases(model, train.cluster_init)
    every = max(1, train.log_every)  # latent KMeans runs at the first chunk boundary at or after its step
    runs = train.cluster_init in PARTITION_STARTS or (
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
    ([`parameter_shapes`][expfam.experiment.prepare.parameter_shapes]); without them, those of the `full` block
    set at these sizes.

    Raises:
        ConfigurationError: the largest array would exceed 2^31 − 1 numbers, or
            [`estimated_bytes`][expfam.experiment.prepare.estimated_bytes] exceeds `limit` (default
            [`memory_limit_bytes`][expfam.experiment.prepare.memory_limit_bytes]).
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


__all__ = [
    "PreparedRun",
    "Preparer",
    "check_cluster_init",
    "check_loss_weights",
    "check_memory",
    "check_observable_shape",
    "estimated_bytes",
    "memory_limit_bytes",
    "model_spec",
    "observable_options",
    "parameter_shapes",
    "parse_blocks",
    "pixel_families",
    "prepare_run",
    "spec_from_record",
    "spec_record",
]
