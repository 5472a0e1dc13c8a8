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

The option tables are [`Options`][expfam.experiment.config.Options], an immutable, hashable mapping; their
names are checked against the plugin when the run is prepared.

Every key is optional in a file; unknown keys and wrong types are errors
that name the key. Defaults are sized for the bundled digits data on a
2-core CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError
from expfam.experiment.config_checks import validate_config
from expfam.experiment.config_parse import parse_block_learning_rates, parse_block_schedule


class Options(Mapping[str, Any]):
    """An immutable, hashable `{name: value}` table (values: TOML scalars, lists, or nested tables)."""

    __slots__ = ("_items",)
    _items: dict[str, Any]

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        frozen = {str(k): Options(v) if isinstance(v, Mapping) else _freeze(v) for k, v in dict(items or {}).items()}
        object.__setattr__(self, "_items", frozen)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"Options({self._items!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Options:
        return self

    def to_dict(self) -> dict[str, Any]:
        """A plain nested `dict` (lists for sequences)."""
        return {
            k: v.to_dict() if isinstance(v, Options) else (list(v) if isinstance(v, tuple) else v)
            for k, v in self.items()
        }


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


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

    `cluster_init` ([`CLUSTER_INITS`][expfam.experiment.config_checks.CLUSTER_INITS]): `"random"` (the parameters' own random start, docs/model.md), `"kmeans"`
    (before the first step, each cluster's observable bias is the observable fitted to its KMeans points:
    [`kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init], needs the `xk`
    block) or `"latent_kmeans"` (KMeans on the posterior mean latent units sets the prior's clusters, once, at
    the first chunk boundary at or after `cluster_init_step`:
    [`expfam.experiment.train.cluster_start`][expfam.experiment.train.cluster_start]).

    `block_schedule` and `block_learning_rates` are the texts of the file (`"xyk:1000,xk:1000"`); each is
    parsed once into typed values, [`block_starts`][expfam.experiment.config.TrainConfig.block_starts] and
    [`block_factors`][expfam.experiment.config.TrainConfig.block_factors], which the training room reads.
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
        """`block_schedule` parsed once: `{block: start step}` (empty: every block from step 0).

        Raises:
            ConfigurationError: the text is malformed
                ([`parse_block_schedule`][expfam.experiment.config_parse.parse_block_schedule]).
        """
        return Options(parse_block_schedule(self.block_schedule))

    @functools.cached_property
    def block_factors(self) -> Mapping[str, float]:
        """`block_learning_rates` parsed once: `{block: learning-rate factor}` (blocks not named: 1).

        Raises:
            ConfigurationError: the text is malformed
                ([`parse_block_learning_rates`][expfam.experiment.config_parse.parse_block_learning_rates]).
        """
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
    # phase 5 of the sweep (validation NMI 0.823 at 2000 steps); the full step costs about
    # 2× the hierarchical one at these sizes, so 2000 steps keep it within the main job's time.
    # Clusters start from KMeans: the full model then keeps every cluster (docs/collapse.md)
    "full": {
        "model": {"n_latent": 32},
        "train": {
            "n_steps": 2000,
            "batch_size": 256,
            "n_mc_samples": 10,
            "n_conj_samples": 1024,
            "cluster_init": "kmeans",
        },
    },
}

SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


def _field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(section: str, key: str, value: Any, expected: type) -> Any:
    where = f"[{section}] {key}"
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if expected is str and isinstance(value, str):
        return value
    if expected is bool and isinstance(value, bool):
        return value
    if expected is Options and isinstance(value, Mapping):
        if key in ("block_options", "loss_options") and not all(isinstance(v, Mapping) for v in value.values()):
            what, example = ("block", "xy") if key == "block_options" else ("loss term", "l2")
            raise ConfigurationError(
                f"{where} must hold one table per {what}, e.g. [{section}.{key}.{example}], got {value!r}",
                offending=key,
            )
        if key == "loss_weights":
            return Options({name: _coerce(section, f"{key}.{name}", w, float) for name, w in value.items()})
        return Options(value)
    kind = "a table" if expected is Options else expected.__name__
    raise ConfigurationError(
        f"{where} must be {kind}, got {type(value).__name__} {value!r}; fix the value",
        offending=key,
    )


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
            changes[key] = _coerce(section, key, value, types_[key])
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
    """Read a TOML configuration file (e.g. a run's `config.toml`)."""
    return config_from_mapping(read_toml(path, "config file"), base)


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The TOML mapping of the file `path` (`what`: "config file", "sweep file", for the messages).

    Raises:
        ConfigurationError: `path` is missing, a folder, unreadable, not UTF-8 or not TOML.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(
            f"{what} {str(path)!r} is a folder, not a file; pass a .toml file", offending=str(path)
        )
    if not path.exists():  # a readable non-regular file (/dev/null, a pipe as /dev/fd/N) is read like a file
        raise ConfigurationError(f"{what} {str(path)!r} does not exist; check the path", offending=str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"{what} {str(path)!r} cannot be read ({error.strerror or error}); check its permissions",
            offending=str(path),
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{what} {str(path)!r} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8 TOML",
            offending=str(path),
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML ({error})", offending=str(path)) from None


def config_to_mapping(config: RunConfig) -> dict[str, dict[str, Any]]:
    """`{section: {key: value}}` of a configuration (option tables as [`Options`][expfam.experiment.config.Options])."""
    return {section: dataclasses.asdict(getattr(config, section)) for section in SECTIONS}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _toml_value(key)


def config_to_toml(config: RunConfig) -> str:
    """The configuration as TOML text that [`load_config`][expfam.experiment.config.load_config] reads back to an equal config."""
    lines: list[str] = []
    for section, values in config_to_mapping(config).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def flatten_config(config: RunConfig) -> dict[str, Any]:
    """`{key: value}` over all sections (keys are unique across sections except `batch_size`)."""
    flat: dict[str, Any] = {}
    for section, values in config_to_mapping(config).items():
        for key, value in values.items():
            flat[key if key not in flat else f"{section}.{key}"] = value
    return flat


__all__ = [
    "BLOCK_DEFAULTS",
    "DataConfig",
    "EvaluateConfig",
    "ModelConfig",
    "Options",
    "RunConfig",
    "TrainConfig",
    "config_from_mapping",
    "config_to_toml",
    "default_config",
    "load_config",
    "read_toml",
    "section_keys",
]
