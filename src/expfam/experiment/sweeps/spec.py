r"""Sweep files: a base configuration and named phases of trials, parsed into a [`SweepSpec`][expfam.experiment.sweeps.spec.SweepSpec].

A sweep file is TOML:

```toml
title = "Hierarchical model parameter sweep"     # optional: the report's title
description = "What the sweep is for."           # optional: the report's Context section
prefix = "H"                                     # run names H1, H2, ... (default "T")
start = 1                                        # first number of the counter (default 1)
min_r2 = 0.95                                    # R² threshold of the best-run rule (default 0.95)
repeats = 3                                      # optional: seeds per configuration (default 1)

[base.model]                                     # the sections of a RunConfig
n_latent = 128
[base.train]
learning_rate = 1.5e-3

[[phases]]
name = "Phase 2: Latent dimension"
grid = {n_latent = [64, 256]}                    # cartesian product over the keys

[[phases]]
name = "Phase 4: Learning rate & warmup"
runs = [{learning_rate = 1e-3, note = "slower"}, {name = "H10", kl_warmup_steps = 50000}]
set = {n_steps = 1000}                           # optional: overrides for every run of the phase
note = "..."                                     # optional: Notes of runs that have none
repeats = 3                                      # optional: seeds per run of this phase

[executor]                                       # optional: where the groups run (flags win)
name = "dask"                                    # a registered executor (default "local")
scheduler = "tls://head:8786"                    # the executor's options (docs/cluster.md)
```

`[executor]` holds `name` and the executor's options; file paths among them (`tls_*`) are read relative
to the sweep file.

An optional `[track]` table says where the sweep is reported
([`expfam.experiment.tracking`][expfam.experiment.tracking]); it is no part of any trial.

Repeats: a run (`runs = [{..., repeats = 3}]`), a phase or the whole file may ask for
`repeats = R`; the run then trains R times with seeds `seed, seed + 1, ..., seed + R − 1`,
as runs named `<name>-s<seed>` (one run directory each). The report shows the
configuration's mean ± standard deviation; `results.csv` keeps one row per seed.

Runs are numbered by one counter over the whole file (`prefix` + number), in
order; a run's `name` replaces its default name but the counter still
advances. Names must be unique.

Override keys are the flat keys of [`expfam.experiment.config.flatten_config`][expfam.experiment.config.flatten_config]
(`n_latent`, `learning_rate`), section-qualified keys (`train.batch_size`,
`evaluate.batch_size`) or the reference table's column names (`lr`,
`kl_warmup`, `entropy_w`, `post_entropy_w`). A bare key that two sections
share means the first section that has it, as in `flatten_config`
(`batch_size` is `train.batch_size`).

[`expfam.experiment.sweeps.run.run_sweep`][expfam.experiment.sweeps.run.run_sweep] runs a parsed sweep.

Examples:
    >>> spec = parse_sweep({"prefix": "H", "phases": [{"name": "P", "grid": {"n_latent": [4, 8]}}]})
    >>> [(trial.name, trial.config.model.n_latent) for trial in spec.trials]
    [('H1', 4), ('H2', 8)]
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError
from expfam.experiment.config import SECTIONS, RunConfig, config_from_mapping, section_keys
from expfam.experiment.config_text import read_toml

#: The reference table's column names accepted as override keys.
ALIASES: dict[str, str] = {
    "lr": "train.learning_rate",
    "kl_warmup": "train.kl_warmup_steps",
    "entropy_w": "train.entropy_weight",
    "post_entropy_w": "train.posterior_entropy_weight",
}
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "title",
    "description",
    "prefix",
    "start",
    "min_r2",
    "repeats",
    "base",
    "phases",
    "executor",
    "track",  # where the sweep is reported (expfam.experiment.tracking), not part of any trial
)
PHASE_KEYS: tuple[str, ...] = ("name", "grid", "runs", "set", "note", "repeats")
DEFAULT_MIN_R2 = 0.95


@dataclass(frozen=True)
class Trial:
    """One run of a sweep.

    Attributes:
        name: the run name, also its directory under the sweep's output folder.
        phase: the name of the phase it belongs to.
        config: the whole configuration (the base with the overrides applied).
        overrides: `{"section.key": value}` the phase and the run set on top of the base.
        note: free text for the report's Notes column.
        configuration: the name of the configuration a repeated run belongs to (its runs
            differ only in the seed); `""` for a run that is not repeated.
    """

    name: str
    phase: str
    config: RunConfig
    overrides: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    configuration: str = ""

    @property
    def label(self) -> str:
        """The configuration's name (a run that is not repeated is its own configuration)."""
        return self.configuration or self.name


@dataclass(frozen=True)
class Phase:
    """A named group of trials (one table of the report)."""

    name: str
    trials: tuple[Trial, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: the base configuration and the phases, in file order."""

    base: RunConfig
    phases: tuple[Phase, ...]
    title: str = "Sweep results"
    description: str = ""
    min_r2: float = DEFAULT_MIN_R2
    source: str = ""
    #: The `[executor]` table: `name` and the executor's options (empty: the `local` executor).
    executor: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trials(self) -> tuple[Trial, ...]:
        """Every trial of every phase, in order."""
        return tuple(trial for phase in self.phases for trial in phase.trials)

    def swept_keys(self) -> list[str]:
        """The `section.key` names that some trial overrides, in order of first appearance."""
        keys: list[str] = []
        for trial in self.trials:
            keys.extend(key for key in trial.overrides if key not in keys)
        return keys


# ----------------------------------------------------------------- keys
def _key_table() -> dict[str, str]:
    """Every accepted override key → `section.key`."""
    table: dict[str, str] = {}
    for section in SECTIONS:
        for key in section_keys(section):
            table.setdefault(key, f"{section}.{key}")
            table[f"{section}.{key}"] = f"{section}.{key}"
    table.update(ALIASES)
    return table


def resolve_key(key: str, where: str) -> str:
    """`section.key` of an override key, or a [`ConfigurationError`][expfam.errors.ConfigurationError] naming it and `where`."""
    table = _key_table()
    if key not in table:
        flat = sorted(name for name in table if "." not in name)
        close = difflib.get_close_matches(key, list(table), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigurationError(
            f"{where}: unknown key {key!r}; {hint}use a configuration key ({', '.join(flat)}) "
            "or a section-qualified one such as 'evaluate.batch_size'",
            offending=key,
        )
    return table[key]


def _nested(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    mapping: dict[str, dict[str, Any]] = {}
    for qualified, value in overrides.items():
        section, key = qualified.split(".", 1)
        mapping.setdefault(section, {})[key] = value
    return mapping


def _apply(base: RunConfig, overrides: Mapping[str, Any], where: str) -> RunConfig:
    try:
        return config_from_mapping(_nested(overrides), base)
    except ConfigurationError as error:
        raise ConfigurationError(f"{where}: {error}", offending=error.offending) from None


# ----------------------------------------------------------------- parsing
def _require_table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a table, got {type(value).__name__} {value!r}", offending=where)
    return value


def _require_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} must be a string, got {type(value).__name__} {value!r}", offending=where)
    return value


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigurationError(f"{where}: unknown field {key!r}; allowed: {', '.join(allowed)}", offending=key)


def _overrides(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {resolve_key(key, where): value for key, value in table.items()}


def _grid_runs(grid: Any, where: str) -> list[dict[str, Any]]:
    grid = _require_table(grid, f"{where} grid")
    axes: list[tuple[str, list[Any]]] = []
    for key, values in grid.items():
        qualified = resolve_key(key, f"{where} grid")
        if not isinstance(values, list) or not values:
            raise ConfigurationError(
                f"{where} grid: {key!r} must be a non-empty list of values, got {values!r}; e.g. {key} = [1, 2]",
                offending=key,
            )
        axes.append((qualified, values))
    return [
        dict(zip([key for key, _ in axes], combination, strict=True))
        for combination in itertools.product(*(v for _, v in axes))
    ]


def _repeats(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(
            f"{where} must be a whole number ≥ 1 (seeds per configuration), got {value!r}", offending=where
        )
    return value


def _check_name(name: str, where: str) -> str:
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ConfigurationError(
            f"{where}: run name {name!r} cannot name a directory; use letters, digits, '-', '_' (no '/', no leading '.')",
            offending=name,
        )
    return name


def parse_sweep(mapping: Mapping[str, Any], *, source: str = "") -> SweepSpec:
    """Build a [`SweepSpec`][expfam.experiment.sweeps.spec.SweepSpec] from the parsed TOML mapping of a sweep file.

    Raises:
        ConfigurationError: naming the unknown key or field, the value of the wrong
            type, or the phase and run it is in.
    """
    _check_keys(mapping, TOP_LEVEL_KEYS, "sweep file")
    base = config_from_mapping(_require_table(mapping.get("base", {}), "[base]"))
    prefix = _require_str(mapping.get("prefix", "T"), "prefix")
    start = mapping.get("start", 1)
    if not isinstance(start, int) or isinstance(start, bool):
        raise ConfigurationError(f"start must be an integer, got {start!r}", offending="start")
    min_r2 = mapping.get("min_r2", DEFAULT_MIN_R2)
    if not isinstance(min_r2, (int, float)) or isinstance(min_r2, bool) or not math.isfinite(min_r2):
        raise ConfigurationError(f"min_r2 must be a number, got {min_r2!r}", offending="min_r2")
    phases_in = mapping.get("phases")
    if not isinstance(phases_in, list) or not phases_in:
        raise ConfigurationError(
            "sweep file has no phases; add at least one [[phases]] table with a name and a grid or runs",
            offending="phases",
        )
    default_repeats = _repeats(mapping.get("repeats", 1), "repeats")
    counter = itertools.count(start)
    names: set[str] = set()
    phases: list[Phase] = []
    for index, phase_in in enumerate(phases_in, 1):
        phase_in = _require_table(phase_in, f"phase {index}")
        phase_name = _require_str(phase_in.get("name", f"Phase {index}"), f"phase {index} name")
        where = f"phase {phase_name!r}"
        _check_keys(phase_in, PHASE_KEYS, where)
        if ("grid" in phase_in) == ("runs" in phase_in):
            raise ConfigurationError(
                f"{where} needs exactly one of 'grid' (a table of value lists) or 'runs' (a list of overrides)",
                offending=phase_name,
            )
        common = _overrides(_require_table(phase_in.get("set", {}), f"{where} set"), f"{where} set")
        phase_note = _require_str(phase_in.get("note", ""), f"{where} note")
        phase_repeats = _repeats(phase_in.get("repeats", default_repeats), f"{where} repeats")
        if "grid" in phase_in:
            runs_in: list[dict[str, Any]] = [
                {"overrides": o, "name": None, "note": phase_note, "repeats": phase_repeats}
                for o in _grid_runs(phase_in["grid"], where)
            ]
        else:
            if not isinstance(phase_in["runs"], list) or not phase_in["runs"]:
                raise ConfigurationError(f"{where} runs must be a non-empty list of tables", offending="runs")
            runs_in = []
            for run_index, run in enumerate(phase_in["runs"], 1):
                run_where = f"{where} run {run_index}"
                run = dict(_require_table(run, run_where))
                name = run.pop("name", None)
                note = _require_str(run.pop("note", phase_note), f"{run_where} note")
                repeats = _repeats(run.pop("repeats", phase_repeats), f"{run_where} repeats")
                runs_in.append(
                    {"overrides": _overrides(run, run_where), "name": name, "note": note, "repeats": repeats}
                )
        trials: list[Trial] = []
        for run in runs_in:
            number = next(counter)
            name = run["name"] if run["name"] is not None else f"{prefix}{number}"
            run_where = f"{where} run {name!r}"
            name = _check_name(_require_str(name, f"{run_where} name"), run_where)
            if name in names:
                raise ConfigurationError(
                    f"{run_where}: the run name {name!r} is used twice; names must be unique", offending=name
                )
            names.add(name)
            overrides = {**common, **run["overrides"]}
            config = _apply(base, overrides, run_where)
            if run["repeats"] == 1:
                trials.append(Trial(name=name, phase=phase_name, config=config, overrides=overrides, note=run["note"]))
                continue
            for repeat in range(run["repeats"]):
                seed = config.train.seed + repeat
                seeded = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
                repeat_name = f"{name}-s{seed}"
                if repeat_name in names:
                    raise ConfigurationError(
                        f"{run_where}: the repeat's run name {repeat_name!r} is used twice; rename a run",
                        offending=repeat_name,
                    )
                names.add(repeat_name)
                trials.append(Trial(repeat_name, phase_name, seeded, overrides, note=run["note"], configuration=name))
        phases.append(Phase(name=phase_name, trials=tuple(trials)))
    return SweepSpec(
        base=base,
        phases=tuple(phases),
        title=_require_str(mapping.get("title", "Sweep results"), "title"),
        description=_require_str(mapping.get("description", ""), "description"),
        min_r2=float(min_r2),
        source=source,
        executor=_executor_table(mapping.get("executor", {}), source),
    )


def _executor_table(value: Any, source: str) -> dict[str, Any]:
    """The `[executor]` table, its `name` checked and its `tls_*` paths made relative to the sweep file."""
    table = dict(_require_table(value, "[executor]"))
    if "name" in table:
        _require_str(table["name"], "[executor] name")
    folder = Path(source).parent if source else Path()
    for key in [k for k in table if k.startswith("tls_")]:
        path = Path(_require_str(table[key], f"[executor] {key}")).expanduser()
        table[key] = str(path if path.is_absolute() else folder / path)
    return table


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and parse a sweep file.

    Raises:
        ConfigurationError: the file is missing, not TOML, or not a valid sweep (see
            [`parse_sweep`][expfam.experiment.sweeps.spec.parse_sweep]).
    """
    path = Path(path)
    mapping = read_toml(path, "sweep file")
    try:
        return parse_sweep(mapping, source=str(path))
    except ConfigurationError as error:
        raise ConfigurationError(f"{path}: {error}", offending=error.offending) from None


__all__ = [
    "ALIASES",
    "Phase",
    "SweepSpec",
    "Trial",
    "load_sweep",
    "parse_sweep",
    "resolve_key",
]
