r"""A sweep's plots: NMI, R², Purity and Recon against each swept key (`<out>/plots/<key>.png`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from expfam.experiment.runs.atomic import atomic_open
from expfam.experiment.runs.table import METRIC_COLUMNS, config_value
from expfam.experiment.sweeps.results import FINISHED, TrialResult, by_configuration
from expfam.experiment.sweeps.spec import SweepSpec

#: The sweep's plots folder, inside its `--out`.
PLOTS_DIR = "plots"


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

    Each run of [`plot_series`][expfam.experiment.sweeps.plots.plot_series] is a point labelled with its name; the points of
    a series are joined by a line. A repeated configuration is one point, its mean
    ([`by_configuration`][expfam.experiment.sweeps.results.by_configuration]).
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


__all__ = ["PLOTS_DIR", "plot_names", "plot_series", "write_plots"]
