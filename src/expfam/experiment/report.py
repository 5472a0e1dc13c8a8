r"""Sweep reports in the reference table's layout, the sweep's plots, and side-by-side comparisons of runs.

A sweep's `report.md` has a title, an optional Context section, one
`## <phase name>` table per phase with the reference table's columns (`TABLE_COLUMNS`),
`## Best Configuration` chosen by a stated rule ([`best_result`][expfam.experiment.report.best_result]) with the
`expfam train` line that reruns it, links to the plots, and the
`expfam sweep` command that produced the report. `results.csv` holds the
same rows, unrounded (Purity as a fraction), with the phase, status and error.

Cell formats follow the reference table: NMI 2 decimals, R² 3, Purity a percentage with
1 decimal, Recon 2, `lr` as `1.5e-3`; a run without metrics shows `—`.

Examples:
    >>> format_learning_rate(0.0015), format_learning_rate(3e-4)
    ('1.5e-3', '3e-4')
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError
from expfam.experiment.config import RunConfig, config_to_mapping, default_config
from expfam.experiment.pipeline import collapse_warning, compact_float
from expfam.experiment.runs import (
    RunDirectoryError,
    atomic_open,
    atomic_write_text,
    read_config,
    read_metrics,
    require_finished,
)
from expfam.experiment.summary import config_differences, differences_text
from expfam.experiment.sweep_spec import SweepSpec
from expfam.experiment.trials import FAILED, FINISHED, PENDING, TrialResult

#: The reference table's columns with the widths of its separator row.
TABLE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Run", 5),
    ("n_latent", 10),
    ("n_clusters", 12),
    ("lr", 6),
    ("kl_warmup", 11),
    ("conj_weight", 13),
    ("entropy_w", 11),
    ("post_entropy_w", 16),
    ("n_steps", 9),
    ("NMI", 5),
    ("Active", 8),
    ("R²", 5),
    ("Purity", 8),
    ("Recon", 7),
    ("Notes", 7),
)
#: Hyperparameter columns → `section.key` of the configuration.
HYPERPARAMETER_COLUMNS: dict[str, str] = {
    "n_latent": "model.n_latent",
    "n_clusters": "model.n_clusters",
    "lr": "train.learning_rate",
    "kl_warmup": "train.kl_warmup_steps",
    "conj_weight": "train.conj_weight",
    "entropy_w": "train.entropy_weight",
    "post_entropy_w": "train.posterior_entropy_weight",
    "n_steps": "train.n_steps",
}
#: Metric columns → keys of `metrics.json`.
METRIC_COLUMNS: dict[str, str] = {"NMI": "nmi", "R²": "r2", "Purity": "purity", "Recon": "recon"}
#: Test-split metrics, shown beside the validation metrics when runs hold out a validation split.
TEST_COLUMNS: dict[str, str] = {f"Test {column}": f"test_{key}" for column, key in METRIC_COLUMNS.items()}
#: Table columns that are not plotted or compared: active clusters (next to NMI, so a collapse is visible).
COUNT_COLUMNS: dict[str, str] = {"Active": "active_clusters"}
MISSING = "—"
REPORT_FILE, RESULTS_FILE, PLOTS_DIR = "report.md", "results.csv", "plots"
#: Flags of `expfam train` come from these sections; `[evaluate]` only from a `--config` file.
FLAG_SECTIONS: tuple[str, ...] = ("model", "data", "train")


# ----------------------------------------------------------------- cells
def config_value(config: RunConfig, qualified: str) -> Any:
    """The value of `section.key` in `config`."""
    section, key = qualified.split(".", 1)
    return getattr(getattr(config, section), key)


def format_learning_rate(value: float) -> str:
    """`1.5e-3`, `3e-4`, `1e-3` as in the reference table (`0` stays `0`); the same format as `expfam train`'s row."""
    return compact_float(value)


def format_cell(column: str, value: Any) -> str:
    """One table cell in the reference table's format (`None` is `—`; `(mean, sd)` is `mean ± sd`)."""
    if value is None:
        return MISSING
    if isinstance(value, tuple):
        mean, sd = value
        return f"{format_cell(column, mean)} ± {format_cell(column, sd)}"
    if isinstance(value, str):
        return value.replace("|", "\\|").replace("\n", " ")
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    column = column.removeprefix("Test ")
    formats = {
        "lr": format_learning_rate,
        "NMI": "{:.2f}".format,
        "Active": "{:.0f}".format,
        "R²": "{:.3f}".format,
        "Recon": "{:.2f}".format,
    }
    if column in formats:
        return formats[column](value)
    if column == "Purity":
        return f"{100 * value:.1f}%"
    return repr(value) if isinstance(value, float) else str(value)


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
    row.update({column: _float_or_none(metrics.get(key)) for column, key in METRIC_COLUMNS.items()})
    row.update({column: _float_or_none(metrics.get(key)) for column, key in TEST_COLUMNS.items()})
    if result.spread is not None and metrics:
        row.update(
            {
                column: (row[column], _float_or_none(result.spread.get(key)))
                for column, key in {**METRIC_COLUMNS, **TEST_COLUMNS}.items()
                if row[column] is not None
            }
        )
    row.update({column: _float_or_none(metrics.get(key)) for column, key in COUNT_COLUMNS.items()})
    row["Notes"] = notes(result)
    return row


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


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
    lines = [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "|".join("-" * width for _, width in columns) + "|",
    ]
    for result in results:
        row = table_row(result)
        lines.append("| " + " | ".join(format_cell(name, row[name]) for name, _ in columns) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------- repeats
def by_configuration(results: Sequence[TrialResult]) -> list[TrialResult]:
    r"""One result per configuration, in order: a repeated configuration's seeds summarised.

    A configuration run with `R` seeds (`configuration`)
    becomes one result named after it, with `metrics` the mean over its finished seeds and
    `spread` the sample standard deviation $\sqrt{\sum_r (m_r - \bar m)^2 / (R - 1)}$
    (0 for one seed). It is finished when every seed finished, failed when one failed
    (naming it), else pending. Results of runs that are not repeated pass through unchanged.
    """
    groups: dict[str, list[TrialResult]] = {}
    for result in results:
        groups.setdefault(result.trial.label, []).append(result)
    summary: list[TrialResult] = []
    for label, members in groups.items():
        if len(members) == 1 and not members[0].trial.configuration:
            summary.append(members[0])
            continue
        finished = [m.metrics for m in members if m.status == FINISHED and m.metrics is not None]
        keys = [key for key in (finished[0] if finished else {}) if all(key in m for m in finished)]
        means, spread = {}, {}
        for key in keys:
            values = [float(m[key]) for m in finished]
            means[key] = math.fsum(values) / len(values)
            spread[key] = (
                math.sqrt(math.fsum((v - means[key]) ** 2 for v in values) / (len(values) - 1))
                if len(values) > 1
                else 0.0
            )
        failed = [m for m in members if m.status == FAILED]
        status = FAILED if failed else (FINISHED if len(finished) == len(members) else PENDING)
        error = f"{failed[0].trial.name}: {failed[0].error}" if failed else ""
        seconds = [m.seconds for m in members if m.seconds is not None and math.isfinite(m.seconds)]
        summary.append(
            TrialResult(
                dataclasses.replace(members[0].trial, name=label),
                status,
                means if finished else None,
                error,
                math.fsum(seconds) if seconds else None,
                reused=all(m.reused for m in members),
                spread=spread if finished else None,
                repeats=len(finished),
            )
        )
    return summary


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
        f"{column} {format_cell(column, _float_or_none(metrics.get(key)))}" for column, key in METRIC_COLUMNS.items()
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


# ----------------------------------------------------------------- plots
def _plot_name(qualified: str, swept: Sequence[str]) -> str:
    key = qualified.split(".", 1)[1]
    shared = sum(other.split(".", 1)[1] == key for other in swept) > 1
    return qualified.replace(".", "_") if shared else key


def plot_names(spec: SweepSpec) -> dict[str, str]:
    """`{section.key: file name}` of the sweep's plots, in the order the keys are first swept."""
    swept = spec.swept_keys()
    return {key: f"{_plot_name(key, swept)}.png" for key in swept}


def plot_series(spec: SweepSpec, results: Sequence[TrialResult], key: str) -> dict[str, list[TrialResult]]:
    """The finished runs plotted against `key`, as `{legend label: runs}`.

    The runs are those that set `key` and the baseline runs (every swept key at
    its base value). If two of them share a value of `key` (a grid over several
    keys), they are split into one series per combination of the other swept keys.
    """
    swept = spec.swept_keys()
    others = [k for k in swept if k != key]
    runs = [
        r
        for r in results
        if r.status == FINISHED
        and r.metrics
        and (
            key in r.trial.overrides
            or all(config_value(r.trial.config, k) == config_value(spec.base, k) for k in swept)
        )
    ]
    values = [config_value(r.trial.config, key) for r in runs]
    if len(set(map(str, values))) == len(values):
        return {"": runs} if runs else {}
    series: dict[str, list[TrialResult]] = {}
    for run in runs:
        label = ", ".join(f"{k.split('.', 1)[1]}={config_value(run.trial.config, k)}" for k in others)
        series.setdefault(label, []).append(run)
    return series


def write_plots(spec: SweepSpec, results: Sequence[TrialResult], out: str | Path) -> list[Path]:
    """`out/plots/<key>.png` for every swept key: NMI, R², Purity and Recon against the key's value.

    Each run of [`plot_series`][expfam.experiment.report.plot_series] is a point labelled with its name; the points of
    a series are joined by a line. A repeated configuration is one point, its mean
    ([`by_configuration`][expfam.experiment.report.by_configuration]).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = by_configuration(results)

    written: list[Path] = []
    for key, file_name in plot_names(spec).items():
        series = plot_series(spec, results, key)
        if not series:
            continue
        values = [config_value(r.trial.config, key) for runs in series.values() for r in runs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        categories = sorted({str(v) for v in values})

        def position(
            run: TrialResult, key: str = key, numeric: bool = numeric, categories: list[str] = categories
        ) -> float:
            value = config_value(run.trial.config, key)
            return float(value) if numeric else float(categories.index(str(value)))

        figure = Figure(figsize=(4 * len(METRIC_COLUMNS), 3.4))
        FigureCanvasAgg(figure)
        for index, (column, metric) in enumerate(METRIC_COLUMNS.items()):
            axes = figure.add_subplot(1, len(METRIC_COLUMNS), index + 1)
            scale = 100.0 if column == "Purity" else 1.0
            for label, runs in series.items():
                points = sorted(
                    (position(r), scale * float(r.metrics[metric]), r.trial.name)
                    for r in runs
                    if r.metrics is not None and math.isfinite(float(r.metrics.get(metric, math.nan)))
                )
                if not points:
                    continue
                xs, ys, _ = zip(*points, strict=True)
                axes.plot(xs, ys, "o-", linewidth=1, markersize=5, label=label or None)
                for x, y, name in points:
                    axes.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
            positions = [position(r) for runs in series.values() for r in runs]
            if numeric and min(positions) > 0 and max(positions) / min(positions) >= 10:
                axes.set_xscale("log")
            if not numeric:
                axes.set_xticks(range(len(categories)), categories)
            if len(series) > 1 and index == 0:
                axes.legend(fontsize=7)
            axes.set_xlabel(key.split(".", 1)[1])
            axes.set_title(f"{column} (%)" if column == "Purity" else column)
            axes.grid(alpha=0.3)
        figure.tight_layout()
        path = Path(out) / PLOTS_DIR / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as handle:
            figure.savefig(handle, format="png", dpi=100)
        written.append(path)
    return written


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
            ([`require_finished`][expfam.experiment.runs.require_finished]), or its `metrics.json` is missing
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
    ([`config_differences`][expfam.experiment.summary.config_differences]); nothing when they are the same.

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
        cells = [format_cell(column, _float_or_none(run.metrics.get(key))) for run in runs]
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
    """[`read_run_summary`][expfam.experiment.report.read_run_summary] of each directory, labelled by its name (`parent/name` where names repeat)."""
    paths = [Path(p) for p in run_dirs]
    names = [p.name for p in paths]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [read_run_summary(path, label) for path, label in zip(paths, labels, strict=True)]


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """[`comparison_text`][expfam.experiment.report.comparison_text] of run directories, labelled by directory name (`parent/name` where names repeat)."""
    return comparison_text(read_run_summaries(run_dirs))


__all__ = [
    "METRIC_COLUMNS",
    "TABLE_COLUMNS",
    "RunSummary",
    "best_result",
    "by_configuration",
    "compare_runs",
    "comparison_text",
    "format_cell",
    "format_learning_rate",
    "format_table",
    "plot_names",
    "plot_series",
    "read_run_summaries",
    "read_run_summary",
    "report_text",
    "results_csv_text",
    "train_command",
    "write_plots",
    "write_results",
]
