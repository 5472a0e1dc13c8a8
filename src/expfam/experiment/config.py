"""Run configuration: one dataclass tree that loads from TOML and flags and is written into every run.

Sections mirror the TOML file:

```text
[model]     block, observable, n_trials, n_latent, n_clusters
[model.observable_options]   options of the observable family
[model.block_options.NAME]   options of block NAME
[data]      dataset, data, test_fraction, validation_fraction
[data.options]               options of the dataset plugin
[train]     learning_rate, n_steps, batch_size, warmups, loss weights, ...
[train.loss_weights]         {loss term: weight}, over the named weights
[train.loss_options.NAME]    options of loss term NAME
[evaluate]  sample counts of the final evaluation
```

The option tables are [`Options`][expfam.experiment.config_text.Options] (immutable, hashable); their names are
checked against the plugin when the run is prepared. Every key is optional in a file; unknown keys and wrong types
are errors that name the key. Defaults are sized for the bundled digits data on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError, ConfigurationWarning
from expfam.experiment.config_text import (
    Options,
    coerce_value,
    parse_block_learning_rates,
    parse_block_schedule,
    read_toml,
    toml_value,
)


@dataclass(frozen=True)
class ModelConfig:
    """What model to build (see [`expfam.builder.ModelSpec`][expfam.builder.ModelSpec])."""

    block: str = "hierarchical"
    observable: str = "binomial"
    n_trials: int = 16
    n_latent: int = 128
    n_clusters: int = 20
    observable_options: Options = field(default_factory=Options)
    block_options: Options = field(default_factory=Options)


@dataclass(frozen=True)
class DataConfig:
    """Which data to load: a dataset plugin name and, for file datasets, a path.

    `validation_fraction > 0` holds out that share of the training split and
    evaluates on it instead of the test split (model selection in sweeps).
    """

    dataset: str = "digits"
    data: str = ""
    test_fraction: float = 0.2
    options: Options = field(default_factory=Options)
    validation_fraction: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and loss settings (docs/objectives.md); names follow the reference table's columns.

    The defaults are the main job's (hierarchical, bundled digits), chosen on a
    validation split by `examples/sweeps/digits_defaults.toml` (phase 11) within the
    training time of the previous defaults, then `cluster_init = "latent_kmeans"` at step
    1000 with `n_latent = 128` (docs/results/digits_defaults/README.md, "Candidates after the
    defaults"); other block sets may override them (`BLOCK_DEFAULTS`).

    `cluster_init` (`CLUSTER_INITS`): `"random"` (the parameters' own random start, docs/model.md), `"kmeans"`
    (before the first step, each cluster's observable bias is the observable fitted to its KMeans points:
    [`kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init], needs the `xk`
    block), `"spectral"` (the same from spectral clustering's partition) or `"latent_kmeans"` (KMeans on the posterior mean latent units sets the prior's clusters, once, at
    the first chunk boundary at or after `cluster_init_step`:
    [`expfam.experiment.train.cluster_start`][expfam.experiment.train.cluster_start]).

    `block_schedule` and `block_learning_rates` are the file's texts (`"xyk:1000,xk:1000"`), each parsed once into
    [`block_starts`][expfam.experiment.config.TrainConfig.block_starts] and [`block_factors`][expfam.experiment.config.TrainConfig.block_factors].
    """

    learning_rate: float = 3e-3
    lr_warmup_steps: int = 200
    weight_decay: float = 0.0
    n_steps: int = 8000
    batch_size: int = 128
    kl_warmup_steps: int = 2000
    conj_warmup_steps: int = 1000
    conj_weight: float = 0.1
    entropy_weight: float = 1.0
    posterior_entropy_weight: float = 1.0
    recognition_conj_weight: float = 0.0
    elbo_estimator: str = "elbo"
    n_mc_samples: int = 4
    n_conj_samples: int = 256
    rho_mode: str = "learned"
    cluster_init: str = "latent_kmeans"
    cluster_init_step: int = 1000
    seed: int = 0
    log_every: int = 250
    checkpoint_every: int = 4
    block_schedule: str = ""
    block_learning_rates: str = ""
    loss_weights: Options = field(default_factory=Options)
    loss_options: Options = field(default_factory=Options)

    @functools.cached_property
    def block_starts(self) -> Mapping[str, int]:
        """`block_schedule` parsed once ([`parse_block_schedule`][expfam.experiment.config_text.parse_block_schedule]):
        `{block: start step}`, empty for every block from step 0; a malformed text raises `ConfigurationError`."""
        return Options(parse_block_schedule(self.block_schedule))

    @functools.cached_property
    def block_factors(self) -> Mapping[str, float]:
        """`block_learning_rates` parsed once ([`parse_block_learning_rates`][expfam.experiment.config_text.parse_block_learning_rates]):
        `{block: learning-rate factor}`, blocks not named: 1; a malformed text raises `ConfigurationError`."""
        return Options(parse_block_learning_rates(self.block_learning_rates))


@dataclass(frozen=True)
class EvaluateConfig:
    """Sample counts of the final evaluation (docs/metrics.md)."""

    n_r2_samples: int = 10_000
    n_elbo_samples: int = 10
    n_iwae_samples: int = 100
    batch_size: int = 1000


@dataclass(frozen=True)
class RunConfig:
    """The whole configuration of one training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


#: Defaults that differ by block set, `{block set: {section: {key: value}}}`, applied
#: over [`RunConfig`][expfam.experiment.config.RunConfig]'s defaults where the user sets no value (see [`default_config`][expfam.experiment.config.default_config]).
#: Chosen on digits by `examples/sweeps/digits_defaults.toml` (docs/results/digits_defaults/).
BLOCK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    # phase 5 of the sweep (validation NMI 0.823 at 2000 steps); 2000 steps keep the main job's time.
    # Clusters start from spectral clustering's partition, cluster blocks at 3x lr (docs/coupling.md)
    "full": {
        "model": {"n_latent": 32},
        "train": {
            "n_steps": 2000,
            "batch_size": 256,
            "n_mc_samples": 10,
            "n_conj_samples": 1024,
            "cluster_init": "spectral",
            "block_learning_rates": "xyk:3,xk:3",
        },
    },
}

#: Starting points of the clusters (`[train] cluster_init`): `"random"` (each parameter's own
#: rule, [`expfam.model.Harmonium.init`][expfam.model.Harmonium.init]), `"kmeans"` (the observable's per-cluster biases
#: from KMeans on the data, [`kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init]),
#: `"spectral"` (the same from spectral clustering, [`spectral_cluster_init`][expfam.experiment.train.cluster_start.spectral_cluster_init]) or
#: `"latent_kmeans"` (the prior's clusters from KMeans on the posterior latent means at `cluster_init_step`,
#: [`latent_kmeans_init`][expfam.experiment.train.cluster_start.latent_kmeans_init]).
CLUSTER_INITS: tuple[str, ...] = ("random", "kmeans", "spectral", "latent_kmeans")

SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


def _field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def section_keys(section: str) -> list[str]:
    """The keys a section accepts."""
    return list(_field_types(SECTIONS[section]))


def config_from_mapping(mapping: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay `{section: {key: value}}` on `base` (default: the defaults), checking names and types."""
    base = base or RunConfig()
    updates: dict[str, Any] = {}
    for section, values in mapping.items():
        if section not in SECTIONS:
            raise ConfigurationError(
                f"unknown config section [{section}]; sections are: {', '.join(SECTIONS)}", offending=section
            )
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"[{section}] must be a table of keys, got {values!r}", offending=section)
        types_ = _field_types(SECTIONS[section])
        changes = {}
        for key, value in values.items():
            if key not in types_:
                raise ConfigurationError(
                    f"unknown key {key!r} in [{section}]; allowed: {', '.join(types_)}", offending=key
                )
            changes[key] = coerce_value(section, key, value, types_[key])
        updates[section] = dataclasses.replace(getattr(base, section), **changes)
    config = dataclasses.replace(base, **updates)
    validate_config(config)
    return config


def default_config(block: str | None = None) -> RunConfig:
    """The defaults of a run of `block` (default: the main job's, hierarchical).

    [`RunConfig`][expfam.experiment.config.RunConfig]'s defaults with `[model] block` set and the overrides of
    `BLOCK_DEFAULTS` for that block set applied (none for other blocks).
    """
    block = block or ModelConfig.block
    base = dataclasses.replace(RunConfig(), model=dataclasses.replace(ModelConfig(), block=block))
    return config_from_mapping(BLOCK_DEFAULTS.get(block, {}), base)


def load_config(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a TOML configuration file (e.g. a run's `config.toml`), skipping `[track]` (where a run is reported)."""
    return config_from_mapping({k: v for k, v in read_toml(path, "config file").items() if k != "track"}, base)


def config_to_mapping(config: RunConfig) -> dict[str, dict[str, Any]]:
    """`{section: {key: value}}` of a configuration (option tables as [`Options`][expfam.experiment.config_text.Options])."""
    return {section: dataclasses.asdict(getattr(config, section)) for section in SECTIONS}


def config_to_toml(config: RunConfig) -> str:
    """The configuration as TOML text that [`load_config`][expfam.experiment.config.load_config] reads back to an equal config."""
    lines: list[str] = []
    for section, values in config_to_mapping(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def _check(condition: bool, message: str, key: str) -> None:
    if not condition:
        raise ConfigurationError(message, offending=key)


#: Largest count, size or step number: the array library indexes and counts steps in int32.
MAX_INT32 = 2**31 - 1
#: Largest trial count N: counts 0..N must be exact in float32 (integers up to 2^24 are).
MAX_N_TRIALS = 2**24
#: Largest seed: the data split and the random streams take an unsigned 32-bit seed.
MAX_SEED = 2**32 - 1
#: `[train]` and `[evaluate]` keys that are counts or step numbers (int32 on the accelerator).
_COUNT_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("n_latent", "n_clusters"),
    "train": (
        "n_steps",
        "batch_size",
        "n_mc_samples",
        "n_conj_samples",
        "log_every",
        "checkpoint_every",
        "lr_warmup_steps",
        "kl_warmup_steps",
        "conj_warmup_steps",
        "cluster_init_step",
    ),
    "evaluate": ("n_r2_samples", "n_elbo_samples", "n_iwae_samples", "batch_size"),
}


def _check_upper_bounds(config: RunConfig) -> None:
    """Integers the numeric types cannot hold: counts above int32, `n_trials` above 2^24, seeds above 2^32 − 1."""
    for section, keys in _COUNT_KEYS.items():
        for key in keys:
            value = getattr(getattr(config, section), key)
            _check(
                value <= MAX_INT32,
                f"[{section}] {key} = {value} is larger than {MAX_INT32} (2^31 − 1, the largest int32 the array "
                "library counts with); use a smaller value",
                key,
            )
    _check(
        config.model.n_trials <= MAX_N_TRIALS,
        f"[model] n_trials = {config.model.n_trials} is larger than {MAX_N_TRIALS} (2^24, the largest count float32 "
        "holds exactly); use a smaller trial count, e.g. 16 or 255",
        "n_trials",
    )
    _check(
        0 <= config.train.seed <= MAX_SEED,
        f"[train] seed = {config.train.seed} is outside 0..{MAX_SEED} (an unsigned 32-bit seed); "
        "use a seed in that range, e.g. 0",
        "seed",
    )


def validate_config(config: RunConfig) -> None:
    """Range checks that need no registry (names are checked when the model is built).

    Lower bounds (≥ 1 counts, fractions in (0, 1), finite non-negative weights) and upper
    bounds from the numeric types: counts ≤ 2^31 − 1 (`MAX_INT32`), `n_trials` ≤
    2^24 (`MAX_N_TRIALS`), `seed` in 0..2^32 − 1 (`MAX_SEED`). What the
    machine's memory can hold depends on the data and is checked when the run is prepared.
    """
    model, train, data, evaluation = config.model, config.train, config.data, config.evaluate
    _check(
        model.n_clusters >= 2, f"n_clusters must be ≥ 2, got {model.n_clusters}; use at least 2 clusters", "n_clusters"
    )
    _check(model.n_latent >= 1, f"n_latent must be ≥ 1, got {model.n_latent}", "n_latent")
    _check(model.n_trials >= 1, f"n_trials must be ≥ 1, got {model.n_trials}", "n_trials")
    _check_upper_bounds(config)
    _check(
        math.isfinite(train.learning_rate) and train.learning_rate > 0,
        f"learning_rate must be a positive number, got {train.learning_rate}; try 1e-3",
        "learning_rate",
    )
    for key in ("n_steps", "batch_size", "n_mc_samples", "n_conj_samples", "log_every"):
        value = getattr(train, key)
        _check(value >= 1, f"{key} must be ≥ 1, got {value}", key)
    _check(
        train.checkpoint_every >= 0,
        f"checkpoint_every must be ≥ 0 (chunks between checkpoints; 0: none), got {train.checkpoint_every}",
        "checkpoint_every",
    )
    for name, weight in train.loss_weights.items():
        _check(
            math.isfinite(weight) and weight >= 0,
            f"[train.loss_weights] {name} must be a finite number ≥ 0, got {weight}; 0 turns the term off",
            name,
        )
    for key in ("lr_warmup_steps", "kl_warmup_steps", "conj_warmup_steps"):
        value = getattr(train, key)
        _check(value >= 0, f"{key} must be ≥ 0, got {value}", key)
    for key in ("weight_decay", "conj_weight", "entropy_weight", "posterior_entropy_weight", "recognition_conj_weight"):
        value = getattr(train, key)
        _check(math.isfinite(value) and value >= 0, f"{key} must be a finite number ≥ 0, got {value}", key)
    _check(
        bool(train.elbo_estimator),
        "elbo_estimator must name a loss term, e.g. 'elbo' or 'rao_blackwell_elbo'",
        "elbo_estimator",
    )
    _check(
        train.rho_mode in ("learned", "analytic"),
        f"rho_mode must be 'learned' or 'analytic', got {train.rho_mode!r}",
        "rho_mode",
    )
    _check(
        train.cluster_init_step >= 0,
        f"cluster_init_step must be ≥ 0 (the step of the cluster initialisation), got {train.cluster_init_step}",
        "cluster_init_step",
    )
    schedule, _ = train.block_starts, train.block_factors  # the texts parsed (and checked) once, here
    _check(
        train.cluster_init in CLUSTER_INITS,
        f"cluster_init must be one of {', '.join(repr(name) for name in CLUSTER_INITS)}, got {train.cluster_init!r}",
        "cluster_init",
    )
    _check(
        train.cluster_init not in ("kmeans", "spectral") or "xk" not in schedule,
        f"cluster_init {train.cluster_init!r} starts the 'xk' block from a partition of the data, but block_schedule "
        f"holds it at zero until step {schedule.get('xk')}; drop xk from block_schedule or use cluster_init 'random'",
        "cluster_init",
    )
    _check(
        0.0 < data.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {data.test_fraction}", "test_fraction"
    )
    _check(
        0.0 <= data.validation_fraction < 1.0,
        f"validation_fraction must be in [0, 1), got {data.validation_fraction}; 0 evaluates on the test split",
        "validation_fraction",
    )
    for key in ("n_r2_samples", "n_elbo_samples", "n_iwae_samples", "batch_size"):
        value = getattr(evaluation, key)
        _check(value >= 1, f"[evaluate] {key} must be ≥ 1, got {value}", key)


def config_warnings(config: RunConfig) -> list[str]:
    r"""Settings that pass [`validate_config`][expfam.experiment.config.validate_config] but are probably a mistake.

    Today one: `kl_warmup_steps ≥ n_steps`. The KL weight rises from 0 to 1 over the
    warmup ($\beta_t = \min(1, t / T_{\text{warmup}})$), so such a run ends before it
    optimises the full ELBO.

    Returns:
        One message per problem (empty when there is none).
    """
    train = config.train
    messages = []
    if train.kl_warmup_steps > 0 and train.kl_warmup_steps >= train.n_steps:
        messages.append(
            f"[train] kl_warmup_steps = {train.kl_warmup_steps} is not below n_steps = {train.n_steps}: the KL "
            "warmup never finishes, so the run never trains on the full ELBO; lower kl_warmup_steps (e.g. to "
            f"{train.n_steps // 4}) or raise n_steps"
        )
    return messages


def warn_about_config(config: RunConfig) -> None:
    """Issue each of [`config_warnings`][expfam.experiment.config.config_warnings] with `warnings.warn`.

    The category is [`ConfigurationWarning`][expfam.errors.ConfigurationWarning]; training
    ([`train_run`][expfam.experiment.runs.solo.train_run], sweeps and
    [`HarmoniumClustering.fit`][expfam.sklearn.HarmoniumClustering.fit]) calls it once every
    check has passed, just before the first step; the command line prints each as one
    `warning: ...` line on stderr.
    """
    for message in config_warnings(config):
        warnings.warn(message, ConfigurationWarning, stacklevel=2)


def flatten_config(config: RunConfig) -> dict[str, Any]:
    """`{key: value}` over all sections (keys are unique across sections except `batch_size`)."""
    flat: dict[str, Any] = {}
    for section, values in config_to_mapping(config).items():
        for key, value in values.items():
            flat[key if key not in flat else f"{section}.{key}"] = value
    return flat


__all__ = [
    "BLOCK_DEFAULTS",
    "CLUSTER_INITS",
    "MAX_INT32",
    "MAX_N_TRIALS",
    "MAX_SEED",
    "DataConfig",
    "EvaluateConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "config_from_mapping",
    "config_to_toml",
    "config_warnings",
    "default_config",
    "load_config",
    "section_keys",
    "validate_config",
    "warn_about_config",
]
