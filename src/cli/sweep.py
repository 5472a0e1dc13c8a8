"""``expfam sweep``: run every trial of a sweep file, resumably, and write its report.

Each trial trains into ``<out>/<run name>/``; ``<out>/report.md`` and
``<out>/results.csv`` are rewritten after each trial. Rerunning the same
command reads finished trials back and trains the rest (see docs/sweeps.md).
Exit codes: 0 all trials finished, 1 some trial failed, 2 bad input, 130 interrupted (as every command).
"""

import shlex
from pathlib import Path
from typing import Annotated

import typer

from expfam.experiment.report import REPORT_FILE
from expfam.experiment.sweep import FAILED, load_sweep, run_sweep


def sweep(
    sweep_file: Annotated[
        Path, typer.Argument(metavar="SWEEP_FILE", help="The sweep file (TOML): [base.*] sections and [[phases]].")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", metavar="PATH", help="Sweep folder. (default: sweeps/<file name>)")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, metavar="INTEGER", help="Trials trained at once, each in its own process.")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Retrain trials whose run directory holds another configuration.")
    ] = False,
    run_plots: Annotated[
        bool, typer.Option("--run-plots/--no-run-plots", help="Write each run's own PNGs (slow for short runs).")
    ] = True,
) -> None:
    """Train every trial of a sweep file and write report.md and results.csv in the reference table's layout."""
    spec = load_sweep(sweep_file)
    out = out if out is not None else Path("sweeps") / sweep_file.stem
    argv = ["expfam", "sweep", str(sweep_file), "--out", str(out)]
    argv += (["--jobs", str(jobs)] if jobs != 1 else []) + (["--overwrite"] if overwrite else [])
    argv += [] if run_plots else ["--no-run-plots"]
    typer.echo(f"{len(spec.trials)} trials in {len(spec.phases)} phases → {out}")
    try:
        results = run_sweep(
            spec, out, jobs=jobs, overwrite=overwrite, command=shlex.join(argv), log=typer.echo, run_plots=run_plots
        )
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished trials are kept in {out}; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    failed = [r.trial.name for r in results if r.status == FAILED]
    typer.echo(f"report: {out / REPORT_FILE}")
    if failed:
        typer.echo(
            f"{len(failed)} of {len(results)} trials failed: {', '.join(failed)} (see <run>/error.txt)", err=True
        )
        raise typer.Exit(1)
