"""`expfam sweep`: run every trial of a sweep file, resumably, and write its report.

Each trial trains into `<out>/<run name>/`; `<out>/report.md` and
`<out>/results.csv` are rewritten after each trial. Rerunning the same
command reads finished trials back and trains the rest (see docs/sweeps.md).
Trials that share every shape train together in one compiled program (`--stack N` caps a
group, `--no-stack` trains one at a time; docs/stacking.md).
Exit codes: 0 all trials finished, 1 some trial failed, 2 bad input, 130 interrupted (as every command).
"""

import shlex
from pathlib import Path
from typing import Annotated

import typer

from cli.tracking import TrackFlag, TrackingUriFlag, trackers_from_flags
from expfam import interrupts
from expfam.errors import ConfigurationError, RunFailedError
from expfam.experiment.sweeps.report import REPORT_FILE
from expfam.experiment.sweeps.results import FAILED
from expfam.experiment.sweeps.run import run_sweep
from expfam.experiment.sweeps.spec import load_sweep
from expfam.experiment.train.chunks import resolve_vectorize


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
    stack: Annotated[
        int | None,
        typer.Option(
            "--stack",
            min=1,
            metavar="N",
            help="At most N trials per stacked group (trials of one shape train in one program). (default: no cap)",
        ),
    ] = None,
    no_stack: Annotated[bool, typer.Option("--no-stack", help="Train one trial at a time (no stacking).")] = False,
    vectorize: Annotated[
        str,
        typer.Option(
            "--vectorize",
            metavar="MODE",
            help="How a stacked group runs: vmap (wide kernels, GPU), map (one after another in one program, "
            "a solo run's exact numbers) or auto (map on a CPU, vmap elsewhere).",
        ),
    ] = "auto",
    devices: Annotated[
        int | None,
        typer.Option(
            "--devices",
            min=1,
            metavar="N",
            help="Spread a stacked group's trials over N devices (a lone trial: split its batches).",
        ),
    ] = None,
    track: TrackFlag = None,
    tracking_uri: TrackingUriFlag = None,
) -> None:
    """Train every trial of a sweep file and write report.md and results.csv in the reference table's layout."""
    if no_stack and stack is not None:
        raise ConfigurationError("--stack and --no-stack contradict each other; give one", offending="--stack")
    resolve_vectorize(vectorize)
    spec = load_sweep(sweep_file)
    out = out if out is not None else Path("sweeps") / sweep_file.stem
    trackers = trackers_from_flags(track, tracking_uri, sweep_file, base=out.expanduser().resolve().parent)
    argv = ["expfam", "sweep", str(sweep_file), "--out", str(out)]
    argv += (["--jobs", str(jobs)] if jobs != 1 else []) + (["--overwrite"] if overwrite else [])
    argv += [] if run_plots else ["--no-run-plots"]
    argv += (["--stack", str(stack)] if stack is not None else []) + (["--no-stack"] if no_stack else [])
    argv += (["--vectorize", vectorize] if vectorize != "auto" else []) + (
        ["--devices", str(devices)] if devices else []
    )
    typer.echo(f"{len(spec.trials)} trials in {len(spec.phases)} phases → {out}")
    interrupts.raise_on_signal()  # the sweep stops its workers and keeps finished trials on KeyboardInterrupt
    try:
        results = run_sweep(
            spec,
            out,
            jobs=jobs,
            overwrite=overwrite,
            command=shlex.join(argv),
            log=typer.echo,
            run_plots=run_plots,
            stack=1 if no_stack else stack,
            vectorize=vectorize,
            devices=devices,
            trackers=trackers,
        )
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished trials are kept in {out}; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    failed = [r.trial.name for r in results if r.status == FAILED]
    typer.echo(f"report: {out / REPORT_FILE}")
    if failed:  # the last line, `error: ...`, exit 1 (a run failed; the input was fine)
        raise RunFailedError(
            f"{len(failed)} of {len(results)} trials failed: {', '.join(failed)} (see {out}/<run>/error.txt); "
            "rerun the same command to retry them",
            offending=failed,
        )
