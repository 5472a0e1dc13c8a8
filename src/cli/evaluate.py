"""``expfam evaluate RUN_DIR``: recompute a run's test metrics from its saved parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from expfam.experiment.pipeline import evaluate_run, format_summary, summary_row
from expfam.experiment.runs import metrics_equal, read_config, read_metrics


def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `expfam train`.")],
) -> None:
    """Recompute the metrics of RUN_DIR on its test split and print them (and whether metrics.json agrees)."""
    metrics = evaluate_run(run_dir)
    typer.echo(format_summary([summary_row(read_config(run_dir), metrics, run=run_dir.name)]))
    typer.echo(f"metrics: {json.dumps(metrics)}")
    stored = read_metrics(run_dir)
    if stored is None:
        typer.echo("metrics.json: none stored (the run diverged or did not finish)", err=True)
    elif metrics_equal(stored, metrics):
        typer.echo("metrics.json: identical", err=True)
    else:
        changed = sorted(key for key in set(stored) | set(metrics) if stored.get(key) != metrics.get(key))
        typer.echo(f"metrics.json: differs in {', '.join(changed)}", err=True)
