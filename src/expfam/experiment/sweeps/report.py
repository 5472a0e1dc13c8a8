r"""Sweep reports in the reference table's layout: `report.md` and `results.csv`.

A sweep's `report.md` has a title, an optional Context section, one
`## <phase name>` table per phase with the reference table's columns
(`TABLE_COLUMNS` of [`expfam.experiment.runs.table`][expfam.experiment.runs.table], cells by the one formatter
[`format_cell`][expfam.experiment.runs.table.format_cell]),
`## Best Configuration` chosen by a stated rule ([`best_result`][expfam.experiment.sweeps.report.best_result]) with
the `expfam train` line that reruns it, links to the plots ([`expfam.experiment.sweeps.plots`][expfam.experiment.sweeps.plots]),
and the `expfam sweep` command that produced the report. `results.csv` holds the
same rows, unrounded (Purity as a fraction), with the phase, status and error.

Examples:
    >>> from expfam.experiment.config import RunConfig
    >>> print(train_command(RunConfig(), per_line=3))
    expfam train --block hierarchical --n-latent 128 --n-clusters 20 \
      --learning-rate 3e-3 --n-steps 8000 --kl-warmup-steps 2000 \
      --conj-weight 0.1 --entropy-weight 1.0 --posterior-entropy-weight 1.0
"""

from __future__ import annotations

import csv
import io
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expfam.experiment.config import RunConfig, config_to_mapping, default_config
from expfam.experiment.runs.atomic import atomic_write_text
from expfam.experiment.runs.health import collapse_warning
from expfam.experiment.runs.table import (
    COUNT_COLUMNS,
    HYPERPARAMETER_COLUMNS,
    METRIC_COLUMNS,
    TABLE_COLUMNS,
    TEST_COLUMNS,
    config_value,
    float_or_none,
    format_cell,
    format_learning_rate,
    markdown_table,
)
from expfam.experiment.sweeps.plots import PLOTS_DIR, plot_names
from expfam.experiment.sweeps.results import FAILED, FINISHED, TrialResult, by_configuration
from expfam.experiment.sweeps.spec import SweepSpec

REPORT_FILE, RESULTS_FILE = "report.md", "results.csv"
#: Flags of `expfam train` come from these sections; `[evaluate]` only from a `--config` file.
FLAG_SECTIONS: tuple[str, ...] = ("model", "data", "train")


def notes(result: TrialResult) -> str:
    """The Notes cell: overrides without a column (`block=full`), the trial's note, why it has no metrics."""
    shown = set(HYPERPARAMETER_COLUMNS.values())
    hidden = [f"{key.split('.', 1)[1]}={value}" for key, value in result.trial.overrides.items() if key not in shown]
    parts = [", ".join(hidden)] if hidden else []
    parts += [result.trial.note] if result.trial.note else []
    if result.spread is not None:
        parts.append(f"mean ± sd over {result.repeats} seeds")
    if result.status == FINISHED and result.metrics is not None:
        warning = collapse_warning(result.metrics, result.trial.config.model.n_clusters)
        parts += [warning.split(";")[0]] if warning else []
    if result.status == FAILED:
        parts.append(f"failed: {result.error}")
    elif result.status != FINISHED:
        parts.append("not run yet")
    return "; ".join(parts)


def table_row(result: TrialResult) -> dict[str, Any]:
    """`{column: raw value}` of one trial (metrics `None` without a finished run)."""
    row: dict[str, Any] = {"Run": result.trial.name}
    row.update({column: config_value(result.trial.config, key) for column, key in HYPERPARAMETER_COLUMNS.items()})
    metrics = result.metrics if result.status == FINISHED and result.metrics is not None else {}
    row.update({column: float_or_none(metrics.get(key)) for column, key in METRIC_COLUMNS.items()})
    row.update({column: float_or_none(metrics.get(key)) for column, key in TEST_COLUMNS.items()})
    if result.spread is not None and metrics:
        row.update(
            {
                column: (row[column], float_or_none(result.spread.get(key)))
                for column, key in {**METRIC_COLUMNS, **TEST_COLUMNS}.items()
                if row[column] is not None
            }
        )
    row.update({column: float_or_none(metrics.get(key)) for column, key in COUNT_COLUMNS.items()})
    row["Notes"] = notes(result)
    return row


def _has_test_metrics(results: Sequence[TrialResult]) -> bool:
    return any(key in (r.metrics or {}) for r in results for key in TEST_COLUMNS.values())


def format_table(results: Sequence[TrialResult]) -> str:
    """The reference table (Markdown) of `results`: header, separator, one line per trial.

    When runs held out a validation split, the metric columns are the validation ones and the
    test split's (`Test NMI`, ...) stand beside them, before Notes.
    """
    columns = list(TABLE_COLUMNS)
    if _has_test_metrics(results):
        columns[-1:-1] = [(name, len(name) + 2) for name in TEST_COLUMNS]
    return markdown_table(columns, [table_row(result) for result in results])


# ----------------------------------------------------------------- best run
def best_result(results: Sequence[TrialResult], min_r2: float) -> tuple[TrialResult | None, bool]:
    """The highest-NMI finished trial with `R² ≥ min_r2`, or failing that the highest NMI overall.

    Returns:
        `(result, qualified)`: `qualified` is False for the fallback; `result` is
        `None` when no trial finished with a finite NMI.
    """
    finished = [
        r for r in results if r.status == FINISHED and r.metrics and math.isfinite(r.metrics.get("nmi", math.nan))
    ]
    qualified = [r for r in finished if r.metrics is not None and r.metrics.get("r2", math.nan) >= min_r2]
    pool = qualified or finished
    if not pool:
        return None, False
    return max(pool, key=lambda r: r.metrics["nmi"] if r.metrics is not None else -math.inf), bool(qualified)


def _flag_value(value: Any) -> str:
    if isinstance(value, float) and value != 0 and abs(value) < 1e-2:
        return format_learning_rate(value)
    return shlex.quote(repr(value) if isinstance(value, float) else str(value))


def train_command(config: RunConfig, *, per_line: int = 4) -> str:
    """The `expfam train` command line for `config`.

    Flags: the block set and the table's hyperparameters always, then every other `[model]`, `[data]` and
    `[train]` key whose value is not the block set's default
    ([`expfam.experiment.config.default_config`][expfam.experiment.config.default_config], what `expfam train`
    fills in).
    """
    defaults = config_to_mapping(default_config(config.model.block))
    values = config_to_mapping(config)
    always = {"model.block", *HYPERPARAMETER_COLUMNS.values()}
    flags = [
        f"--{key.replace('_', '-')} {_flag_value(value)}"
        for section in FLAG_SECTIONS
        for key, value in values[section].items()
        if not isinstance(value, Mapping) and (value != defaults[section][key] or f"{section}.{key}" in always)
    ]
    # option tables have no flags (they come from --config); loss weights do: --loss NAME=WEIGHT
    flags += [f"--loss {name}={_flag_value(weight)}" for name, weight in config.train.loss_weights.items()]
    lines = [" ".join(["expfam train", *flags[:per_line]])]
    lines += ["  " + " ".join(flags[i : i + per_line]) for i in range(per_line, len(flags), per_line)]
    return " \\\n".join(lines)


def _scores(metrics: Mapping[str, float]) -> str:
    return ", ".join(
        f"{column} {format_cell(column, float_or_none(metrics.get(key)))}" for column, key in METRIC_COLUMNS.items()
    )


def best_section(spec: SweepSpec, results: Sequence[TrialResult]) -> list[str]:
    """The lines of `## Best Configuration`."""
    repeated = any(r.trial.configuration for r in results)
    mean = "mean " if repeated else ""
    rule = f"the highest {mean}NMI among the {'configurations' if repeated else 'runs'} with {mean}R² ≥ {spec.min_r2:g}"
    if repeated:
        rule += " (means over each configuration's seeds)"
    if _has_test_metrics(results):
        rule += ", on the validation split; the test split is scored once at the end and chooses nothing"
    lines = ["## Best Configuration", "", f"Rule: {rule}.", ""]
    results = by_configuration(results)
    best, qualified = best_result(results, spec.min_r2)
    if best is None:
        return [*lines, "No run has finished yet."]
    assert best.metrics is not None
    if not qualified:
        what = "configuration reached mean" if repeated else "run reached"
        pool = "mean NMI of all finished configurations" if repeated else "NMI of all finished runs"
        lines += [f"No {what} R² ≥ {spec.min_r2:g}; falling back to the highest {pool}.", ""]
    scores = _scores(best.metrics)
    if best.spread is not None:
        scores = ", ".join(
            f"{column} {format_cell(column, (best.metrics.get(key), best.spread.get(key)))}"
            for column, key in METRIC_COLUMNS.items()
            if best.metrics.get(key) is not None
        )
        scores += f" (mean ± sd over {best.repeats} seeds)"
    if any(key in best.metrics for key in TEST_COLUMNS.values()):
        test = ", ".join(
            f"{column.removeprefix('Test ')} "
            + format_cell(
                column,
                (best.metrics[key], best.spread.get(key)) if best.spread is not None else best.metrics[key],
            )
            for column, key in TEST_COLUMNS.items()
            if key in best.metrics
        )
        scores = f"validation {scores}; test split {test}"
    lines += [
        f"**{best.trial.name}** ({best.trial.phase}): {scores}.",
        "",
        "```",
        train_command(best.trial.config),
        "```",
    ]
    # a repeated configuration's command is its first seed's, whose run directory is <name>-s<seed>
    run_name = f"{best.trial.name}-s{best.trial.config.train.seed}" if best.spread is not None else best.trial.name
    if config_to_mapping(best.trial.config)["evaluate"] != config_to_mapping(RunConfig())["evaluate"]:
        lines += [
            "",
            f"Its `[evaluate]` section is not the default: add `--config {run_name}/config.toml` for the same evaluation.",
        ]
    return lines


# ----------------------------------------------------------------- report and csv
def report_text(
    spec: SweepSpec, results: Sequence[TrialResult], *, command: str = "", plots: Sequence[str] = ()
) -> str:
    """The Markdown report of a sweep (`plots`: paths relative to the report)."""
    counts = {status: sum(r.status == status for r in results) for status in (FINISHED, FAILED)}
    pending = len(results) - counts[FINISHED] - counts[FAILED]
    lines = [f"# {spec.title}", ""]
    if spec.description:
        lines += ["## Context", "", spec.description.strip(), ""]
    status = f"{counts[FINISHED]} of {len(results)} runs finished, {counts[FAILED]} failed, {pending} not run."
    timed = [r.seconds for r in results if r.seconds is not None and math.isfinite(r.seconds)]
    if timed:
        status += f" Wall time: {sum(timed) / 60:.1f} min summed over {len(timed)} runs."
    lines += [status, ""]
    by_name = {r.trial.name: r for r in results}
    for phase in spec.phases:
        lines += [
            f"## {phase.name}",
            "",
            format_table(by_configuration([by_name[t.name] for t in phase.trials if t.name in by_name])),
            "",
        ]
    lines += [*best_section(spec, results), ""]
    if plots:
        lines += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots), ""]
    if command:
        lines += ["## Command", "", "This report was produced by", "", "```", command, "```", ""]
    return "\n".join(lines)


def results_csv_text(results: Sequence[TrialResult]) -> str:
    """`results.csv`: the table's rows unrounded, with phase, status, error and every other metric."""
    shown = {*METRIC_COLUMNS.values(), *COUNT_COLUMNS.values(), *TEST_COLUMNS.values()}
    extra = sorted({key for r in results for key in (r.metrics or {}) if key not in shown})
    repeated = ["Configuration", "seed"] if any(r.trial.configuration for r in results) else []
    tests = list(TEST_COLUMNS) if _has_test_metrics(results) else []
    columns = ["Phase", *(name for name, _ in TABLE_COLUMNS), *tests, *repeated, *extra, "status", "error", "seconds"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for result in results:
        row = table_row(result)
        if not tests:
            row = {key: value for key, value in row.items() if key not in TEST_COLUMNS}
        row["Notes"] = result.trial.note
        metrics = result.metrics or {}
        row.update({key: metrics.get(key) for key in extra})
        row.update(Phase=result.trial.phase, status=result.status, error=result.error, seconds=result.seconds)
        if repeated:
            row.update(Configuration=result.trial.label, seed=result.trial.config.train.seed)
        writer.writerow(
            {
                key: "" if value is None else (repr(value) if isinstance(value, float) else value)
                for key, value in row.items()
            }
        )
    return buffer.getvalue()


def write_results(spec: SweepSpec, results: Sequence[TrialResult], out: str | Path, *, command: str = "") -> None:
    """Rewrite `out/results.csv` and `out/report.md` atomically (linking the plots already in `out/plots`)."""
    out = Path(out)
    plots = [f"{PLOTS_DIR}/{name}" for name in plot_names(spec).values() if (out / PLOTS_DIR / name).is_file()]
    atomic_write_text(out / RESULTS_FILE, results_csv_text(results))
    atomic_write_text(out / REPORT_FILE, report_text(spec, results, command=command, plots=plots))


__all__ = [
    "REPORT_FILE",
    "RESULTS_FILE",
    "best_result",
    "best_section",
    "format_table",
    "notes",
    "report_text",
    "results_csv_text",
    "table_row",
    "train_command",
    "write_results",
]
