"""`expfam sweep`: run every trial of a sweep file, resumably, and write its report.

Each trial trains into `<out>/<run name>/`; `<out>/report.md` and
`<out>/results.csv` are rewritten after each trial. Rerunning the same
command reads finished trials back and trains the rest (see docs/sweeps.md).
Trials that share every shape train together in one compiled program (`--stack N` caps a
group, `--no-stack` trains one at a time; docs/stacking.md).
`--executor dask --scheduler ADDRESS` runs the groups on a Dask cluster (`[executor]` in the sweep file
does the same; flags win; docs/cluster.md).
Exit codes: 0 all trials finished, 1 some trial failed (or the cluster's scheduler went away), 2 bad input,
130 interrupted (as every command).
"""

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.tracking import TrackFlag, TrackingUriFlag, trackers_from_flags
from expfam import interrupts
from expfam.errors import ConfigurationError, RunFailedError
from expfam.experiment.sweeps.report import REPORT_FILE
from expfam.experiment.sweeps.results import FAILED
from expfam.experiment.sweeps.run import run_sweep
from expfam.experiment.sweeps.spec import SweepSpec, load_sweep
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
            help="At most N trials per stacked group (trials of one shape train in one program). "
            "(default: no cap on a GPU, over --devices N or on a cluster; one at a time on a CPU, where stacking "
            "does not pay)",
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
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            metavar="NAME",
            help="Where the groups run: local (this machine, --jobs processes) or dask (a Dask cluster), "
            "or an executor plugin. (default: [executor] of the sweep file, else local)",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="With --executor dask: the scheduler, tcp://host:8786 or tls://host:8786. "
            "(default: a local cluster of --jobs workers)",
        ),
    ] = None,
    tls_ca_file: Annotated[
        Path | None, typer.Option("--tls-ca-file", metavar="PEM", help="tls:// scheduler: the CA certificate.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", metavar="PEM", help="tls:// scheduler: this client's certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="PEM", help="tls:// scheduler: this client's private key.")
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            min=0,
            metavar="N",
            help="With --executor dask: restarts of a group whose worker died. (default: 3)",
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
    flags = {"scheduler": scheduler, "retries": retries} | {
        key: str(path)
        for key, path in (("tls_ca_file", tls_ca_file), ("tls_cert", tls_cert), ("tls_key", tls_key))
        if path is not None
    }
    name, options = executor_choice(spec, executor, {key: value for key, value in flags.items() if value is not None})
    argv += (["--executor", executor] if executor else []) + (["--scheduler", scheduler] if scheduler else [])
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
            stack=1 if no_stack else (stack if stack is not None else "auto"),
            vectorize=vectorize,
            devices=devices,
            executor=name,
            executor_options=options,
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


def executor_choice(spec: SweepSpec, flag: str | None, flags: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The executor's name and options: the sweep file's `[executor]`, overridden by the flags.

    The file's options are kept only for the executor the file names.
    """
    table = dict(spec.executor)
    named = str(table.pop("name", "local"))
    name = flag or named
    return name, (table if name == named else {}) | flags
