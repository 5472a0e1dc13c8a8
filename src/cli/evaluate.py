"""`expfam evaluate RUN_DIR`: recompute a run's test metrics from its saved parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.output import JsonFlag, emit_json
from expfam.experiment.runs.files import metrics_equal, read_config, read_metrics
from expfam.experiment.runs.solo import evaluate_run
from expfam.experiment.runs.table import format_summary, summary_row


def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `expfam train`.")],
    json_output: JsonFlag = False,
) -> None:
    """Recompute the metrics of RUN_DIR on its test split and print them (and whether metrics.json agrees)."""
    metrics = evaluate_run(run_dir)
    row = summary_row(read_config(run_dir), metrics, run=run_dir.name)
    stored = read_metrics(run_dir)
    changed: list[str] = []
    if stored is None:
        agreement = "none stored (the run diverged or did not finish)"
    elif metrics_equal(stored, metrics):
        agreement = "identical"
    else:
        changed = sorted(key for key in set(stored) | set(metrics) if stored.get(key) != metrics.get(key))
        agreement = f"differs in {', '.join(changed)}"
    if json_output:
        stored_state = "none" if stored is None else ("identical" if not changed else "differs")
        emit_json(
            {"run_dir": run_dir, "summary": row, "metrics": metrics, "stored": stored_state, "differs_in": changed}
        )
        return
    typer.echo(format_summary([row]))
    typer.echo(f"metrics: {json.dumps(metrics)}")
    typer.echo(f"metrics.json: {agreement}", err=True)
