r"""Side-by-side comparison of finished runs (`expfam compare`): their metrics and the configuration keys that differ."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError
from expfam.experiment.config import RunConfig, config_to_mapping
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.files import read_config, read_metrics
from expfam.experiment.runs.layout import require_finished
from expfam.experiment.runs.table import METRIC_COLUMNS, float_or_none, format_cell


# ----------------------------------------------------------------- configuration differences
def _flat_items(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat_items(f"{prefix}{key}.", value))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_differences(configs: Sequence[RunConfig]) -> dict[str, list[Any]]:
    """The configuration keys whose values differ between runs: `{"section.key": [value of each run]}`.

    Keys are dotted (`train.n_steps`; option tables one level deeper,
    `data.options.n_classes`), in the order of the configuration's sections; a key
    that one run's tables lack has the value `None` there. Empty when every
    configuration is the same.

    Examples:
        >>> import dataclasses
        >>> short = dataclasses.replace(RunConfig(), train=dataclasses.replace(RunConfig().train, n_steps=10))
        >>> config_differences([RunConfig(), short])
        {'train.n_steps': [8000, 10]}
    """
    flats = [
        _flat_items("", {f"{s}.{k}": v for s, table in config_to_mapping(c).items() for k, v in table.items()})
        for c in configs
    ]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    values = {key: [flat.get(key) for flat in flats] for key in keys}
    return {key: row for key, row in values.items() if any(value != row[0] for value in row[1:])}


def _config_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, float) else str(value)


def differences_text(headers: Sequence[str], differences: Mapping[str, Sequence[Any]]) -> str:
    """A markdown table of [`config_differences`][expfam.experiment.runs.compare.config_differences] (empty: `""`)."""
    if not differences:
        return ""
    lines = [
        "Configuration keys that differ (from each run's config.toml):",
        "",
        "| Key | " + " | ".join(headers) + " |",
        "|-----|" + "|".join("-" * (len(h) + 2) for h in headers) + "|",
    ]
    for key, row in differences.items():
        lines.append(f"| {key} | " + " | ".join(_config_cell(value) for value in row) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------- compare
@dataclass(frozen=True)
class RunSummary:
    """A finished run's label, configuration and metrics."""

    label: str
    config: RunConfig
    metrics: Mapping[str, float]


def read_run_summary(run_dir: str | Path, label: str | None = None) -> RunSummary:
    """The configuration and metrics of a finished run directory.

    Raises:
        RunDirectoryError: the directory or its `config.toml` is missing, the run is not finished
            ([`require_finished`][expfam.experiment.runs.layout.require_finished]), or its `metrics.json` is missing
            or not numbers.
    """
    run_dir = Path(run_dir)
    require_finished(run_dir)
    config = read_config(run_dir)
    metrics = read_metrics(run_dir)
    if metrics is None:
        raise RunDirectoryError(
            f"{str(run_dir)!r} has no metrics.json although its run.json says completed; the run directory was "
            "damaged — recompute it with `expfam evaluate`, or train it again",
            offending=str(run_dir),
        )
    return RunSummary(label=label or run_dir.name, config=config, metrics=metrics)


def comparison_text(runs: Sequence[RunSummary]) -> str:
    """A "Comparison" section: NMI, R², Purity and Recon of each run, and each run's NMI relative to the first.

    When the runs' configurations differ, a table of the keys that differ follows
    ([`config_differences`][expfam.experiment.runs.compare.config_differences]); nothing when they are the same.

    Examples:
        >>> run = RunSummary("H1", RunConfig(), {"nmi": 0.57, "r2": 0.996, "purity": 0.768, "recon": 3.34})
        >>> full = RunSummary("F1", RunConfig(), {"nmi": 0.71, "r2": 0.98, "purity": 0.82, "recon": 3.3})
        >>> print(comparison_text([full, run]).splitlines()[-1])
        H1 (hierarchical) achieves 80% of F1 (hierarchical)'s NMI.
    """
    if not runs:
        raise ConfigurationError("compare needs at least one run directory", offending=None)
    headers = [f"{run.label} ({run.config.model.block})" for run in runs]
    lines = [
        f"## Comparison: {' vs '.join(headers)}",
        "",
        "| Metric | " + " | ".join(headers) + " |",
        "|--------|" + "|".join("-" * (len(h) + 2) for h in headers) + "|",
    ]
    for column, key in METRIC_COLUMNS.items():
        cells = [format_cell(column, float_or_none(run.metrics.get(key))) for run in runs]
        lines.append(f"| {column} | " + " | ".join(cells) + " |")
    lines.append("")
    reference = runs[0].metrics.get("nmi", math.nan)
    for header, run in zip(headers[1:], runs[1:], strict=True):
        nmi = run.metrics.get("nmi", math.nan)
        if math.isfinite(reference) and reference > 0 and math.isfinite(nmi):
            lines.append(f"{header} achieves {nmi / reference:.0%} of {headers[0]}'s NMI.")
        else:
            lines.append(f"{header}: the NMI ratio to {headers[0]} is undefined (NMI {reference} and {nmi}).")
    differences = differences_text(headers, config_differences([run.config for run in runs]))
    return "\n".join([*lines, "", differences] if differences else lines)


def read_run_summaries(run_dirs: Sequence[str | Path]) -> list[RunSummary]:
    """[`read_run_summary`][expfam.experiment.runs.compare.read_run_summary] of each directory, labelled by its name (`parent/name` where names repeat)."""
    paths = [Path(p) for p in run_dirs]
    names = [p.name for p in paths]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [read_run_summary(path, label) for path, label in zip(paths, labels, strict=True)]


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """[`comparison_text`][expfam.experiment.runs.compare.comparison_text] of run directories, labelled by directory name (`parent/name` where names repeat)."""
    return comparison_text(read_run_summaries(run_dirs))


__all__ = [
    "RunSummary",
    "compare_runs",
    "comparison_text",
    "config_differences",
    "differences_text",
    "read_run_summaries",
    "read_run_summary",
]
