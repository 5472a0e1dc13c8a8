r"""Sweeps: run every trial of a sweep file into its own run directory, resumably.

[`run_sweep`][expfam.experiment.sweeps.run.run_sweep] trains each trial of a
[`SweepSpec`][expfam.experiment.sweeps.spec.SweepSpec] into `<out>/<run name>/` (sequentially, or `jobs` at a
time in spawned processes) and rewrites the aggregate files (`results.csv`, `report.md`;
[`expfam.experiment.sweeps.report`][expfam.experiment.sweeps.report]) atomically after each trial.

Resumption: a trial whose run directory is finished
([`expfam.experiment.runs.layout.is_finished`][expfam.experiment.runs.layout.is_finished]: `run.json`, written last, says
`completed`) and whose `config.toml` equals the trial's configuration is read
back, not retrained, so a sweep stopped by Ctrl-C or a kill loses no finished trial;
rerunning the same command trains the rest, including trials killed half-way
(while plotting, say), which are trained again. A trial that raises is recorded (`<run>/error.txt`
and status `failed`) and the others go on; it is tried again on the next run.

Examples:
    Not run as a doctest: it trains the 16 runs of the example sweep (tens of
    minutes); `tests/expfam/test_sweep.py` runs small sweeps.

    >>> spec = load_sweep("examples/sweeps/digits_small.toml")          # doctest: +SKIP
    >>> results = run_sweep(spec, "sweeps/digits_small", log=print)      # doctest: +SKIP
    >>> [(r.trial.name, r.status) for r in results][:2]                  # doctest: +SKIP
    [('H1', 'finished'), ('H2', 'finished')]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError
from expfam.experiment.config import RunConfig, flatten_config, load_config
from expfam.experiment.runs.atomic import RunDirectoryError, atomic_write_text, check_writable
from expfam.experiment.runs.files import read_metrics
from expfam.experiment.runs.layout import CONFIG_FILE, is_finished, read_info
from expfam.experiment.runs.lock import run_lock
from expfam.experiment.runs.recorder import begin_trial, record_failed_trial, record_finished_trial
from expfam.experiment.sweeps.executor import Executor, UnitResult
from expfam.experiment.sweeps.plan import plan_groups
from expfam.experiment.sweeps.plots import PLOTS_DIR, write_plots
from expfam.experiment.sweeps.remote import write_returned_files
from expfam.experiment.sweeps.report import REPORT_FILE, RESULTS_FILE, write_results
from expfam.experiment.sweeps.results import FAILED, FINISHED, PENDING, TrialResult
from expfam.experiment.sweeps.spec import SweepSpec, Trial
from expfam.experiment.sweeps.tracked import TrialReport, tracked_sweep
from expfam.experiment.sweeps.workers import Outcome, TrialRunner, Unit
from expfam.experiment.train.devices import check_device_count
from expfam.plugins import get_registry
from expfam.tracker import Tracker

#: `log(line)`: one line per trial event.
Log = Callable[[str], None]
#: What a sweep writes at its folder's top level besides the run directories: no run may take these names.
SWEEP_FILES: tuple[str, ...] = (REPORT_FILE, RESULTS_FILE, PLOTS_DIR, "sweep.toml")


def check_sweep_inputs(spec: SweepSpec, out: Path, devices: int | None = None) -> None:
    """Everything about a sweep that can be refused before any trial starts, changing nothing on disk.

    Raises:
        ConfigurationError: a run named like one of the sweep's own files (`SWEEP_FILES`), or
            a `devices` count this machine does not have.
        RunDirectoryError: `out` is a file, or a folder (or the parent it would be made in)
            where no file can be created.
    """
    clashes = [trial.name for trial in spec.trials if trial.name.casefold() in {n.casefold() for n in SWEEP_FILES}]
    if clashes:
        raise ConfigurationError(
            f"run name {clashes[0]!r} is the name of a file the sweep writes into --out ({', '.join(SWEEP_FILES)}); "
            "rename the run in the sweep file",
            offending=clashes[0],
        )
    check_device_count(devices)
    out = out.expanduser()
    folder = out
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise RunDirectoryError(
            f"sweep folder {str(out)!r}: {str(folder)!r} is a file, not a folder; choose another --out",
            offending=str(out),
        )
    check_writable(folder, "--out")


def train_trial(
    config: RunConfig, run_dir: Path, *, plots: bool = True, devices: int | None = None
) -> dict[str, float]:
    """The default runner: [`expfam.experiment.runs.solo.train_run`][expfam.experiment.runs.solo.train_run] into `run_dir`, replacing a partial attempt.

    `plots=False` skips the run's four PNGs (they can take longer than a short run's training);
    `devices > 1` splits each batch over that many devices.
    """
    from expfam.experiment.runs.solo import train_run

    return train_run(config, run_dir, overwrite=True, plots=plots, devices=devices)


def _comparable(config: RunConfig) -> dict[str, Any]:
    flat = flatten_config(config)
    if flat.get("data"):
        flat["data"] = str(Path(flat["data"]).expanduser().resolve())
    return flat


def config_differences(first: RunConfig, second: RunConfig) -> list[str]:
    """`"key: a ≠ b"` for every key where two configurations differ (data paths compared resolved)."""
    one, two = _comparable(first), _comparable(second)
    return [f"{key}: {one[key]!r} ≠ {two[key]!r}" for key in one if one[key] != two[key]]


def finished_metrics(trial: Trial, run_dir: Path, *, overwrite: bool = False) -> Mapping[str, float] | None:
    """The metrics of `trial` if `run_dir` holds it finished with the same configuration, else `None`.

    Raises:
        ConfigurationError: `run_dir` holds a finished run of another configuration
            and `overwrite` is off.
    """
    if not (run_dir / CONFIG_FILE).is_file() or not is_finished(run_dir):
        return None
    metrics = read_metrics(run_dir)
    if metrics is None:
        return None
    try:
        existing = load_config(run_dir / CONFIG_FILE)
    except ConfigurationError:
        existing = None
    differences = config_differences(existing, trial.config) if existing is not None else ["config.toml unreadable"]
    if not differences:
        return metrics
    if overwrite:
        return None
    raise ConfigurationError(
        f"run {trial.name!r} in {str(run_dir)!r} finished with another configuration "
        f"({'; '.join(differences[:4])}); pass --overwrite to retrain it, or choose another --out",
        offending=trial.name,
    )


def _describe(result: TrialResult) -> str:
    name = result.trial.name
    if result.status == FAILED:
        return f"{name} failed after {result.seconds:.1f} s: {result.error}"
    metrics = result.metrics or {}
    scores = ", ".join(
        f"{label} {metrics.get(key, math.nan):.3f}"
        for key, label in (("nmi", "NMI"), ("r2", "R²"), ("purity", "purity"), ("recon", "recon"))
    )
    if result.reused:
        return f"{name} already finished ({scores}); read back"
    return f"{name} finished in {result.seconds:.1f} s: {scores}"


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    runner: TrialRunner | None = None,
    jobs: int = 1,
    overwrite: bool = False,
    command: str = "",
    log: Log | None = None,
    plots: bool = True,
    run_plots: bool = True,
    stack: int | str | None = "auto",
    vectorize: str = "auto",
    devices: int | None = None,
    executor: str | Executor = "local",
    executor_options: Mapping[str, Any] | None = None,
    trackers: Sequence[Tracker] = (),
) -> list[TrialResult]:
    """Run every trial of `spec` into `out/<run name>/` and write the sweep's report.

    Trials already finished in `out` with the same configuration are read back.
    After each trial `out/results.csv` and `out/report.md` are rewritten
    atomically; the plots are drawn at the end.

    Args:
        spec: the parsed sweep.
        out: the sweep's folder.
        runner: trains one trial (default [`train_trial`][expfam.experiment.sweeps.run.train_trial]); with `jobs > 1` it
            must be picklable (a module-level function).
        jobs: trials trained at once, each in its own spawned process.
        overwrite: retrain trials whose run directory holds another configuration
            (without it that is an error, raised before anything runs).
        command: the command line shown in the report.
        log: receives one line per trial event.
        plots: draw `out/plots/<key>.png` at the end.
        run_plots: with the default runner, write each run's own plots too.
        stack: with the default runner, trials that share every shape train together in one
            compiled program, at most `stack` per group (`None`: no cap; 1: one at a time; `"auto"`:
            [`default_stack`][expfam.experiment.sweeps.run.default_stack], one at a time on a CPU;
            [`expfam.experiment.sweeps.plan`][expfam.experiment.sweeps.plan]). A custom `runner` trains one trial at a time.
        vectorize: how a stacked group runs (`expfam.experiment.train.chunks.VECTORIZE`).
        devices: with the default runner, spread a stacked group's trials over this many
            devices, or split a lone trial's batches over them.
        executor: where the groups run: a registered executor's name (`"local"`, this machine; `"dask"`, a
            Dask cluster; docs/cluster.md) or an [`Executor`][expfam.experiment.sweeps.executor.Executor].
        executor_options: the executor's options, e.g. for `"dask"` `{"scheduler": address or Client}`.
        trackers: report the sweep as a parent run and each trial as its child, from the trial's folder
            once its outcome is recorded ([`expfam.experiment.sweeps.tracked`][expfam.experiment.sweeps.tracked]).

    Returns:
        One result per trial, in sweep order.

    Raises:
        ConfigurationError: `jobs < 1`, an unpicklable runner with `jobs > 1`, a
            run directory holding another configuration without `overwrite`, an unknown executor or options
            it refuses.
        ExecutorLostError: the executor's engine went away (finished trials are kept; rerun to resume).
        KeyboardInterrupt: after writing the aggregate files; finished trials are kept.
    """
    chosen: Executor = get_registry().executor(executor) if isinstance(executor, str) else executor
    if stack == "auto":
        stack = default_stack(chosen, devices)
    if isinstance(stack, str):
        raise ConfigurationError(f"stack must be an integer ≥ 1, None or 'auto', got {stack!r}", offending="stack")
    stacking = runner is None and stack != 1
    if runner is None:
        options: dict[str, Any] = ({} if run_plots else {"plots": False}) | (
            {} if devices is None else {"devices": devices}
        )
        runner = functools.partial(train_trial, **options) if options else train_trial
    say = log or (lambda line: None)
    if jobs < 1:
        raise ConfigurationError(f"jobs must be ≥ 1, got {jobs}", offending="jobs")
    if stack is not None and stack < 1:
        raise ConfigurationError(
            f"stack must be ≥ 1 (trials per group; 1: no stacking), got {stack}", offending="stack"
        )
    if jobs > 1:
        try:
            pickle.dumps(runner)
        except Exception:
            raise ConfigurationError(
                f"runner {runner!r} cannot be sent to a worker process; use a module-level function or jobs=1",
                offending=runner,
            ) from None
    out = Path(out)
    check_sweep_inputs(spec, out, devices)
    chosen.check(dict(executor_options or {}))
    work = _Work(chosen, dict(executor_options or {}), runner, jobs, vectorize, devices)
    out.mkdir(parents=True, exist_ok=True)
    # one sweep writes a folder at a time; its trackers hear of it from this process alone
    with run_lock(out), tracked_sweep(trackers, spec, out, SWEEP_FILES) as report:
        return _run_locked(spec, out, work, overwrite, command, say, plots, run_plots, stacking, stack, report)


def default_stack(executor: Executor, devices: int | None = None) -> int | None:
    """The `stack` of a sweep that names none: 1 (one trial at a time) where stacking does not pay, else no cap.

    On a CPU a stacked group trains no faster than its trials one after another (`benchmarks/sweep_throughput.py`:
    8 digits trials 1.00× the throughput of one at a time, a 10-trial sweep 1.13× the wall time stacked), so a
    sweep on this machine's CPU trains one trial at a time; on a GPU or TPU, over `devices > 1`, and on a
    remote executor (whose workers' devices this process does not know) trials stack.
    """
    if executor.remote or (devices or 1) > 1:
        return None
    import jax

    return 1 if jax.default_backend() == "cpu" else None


@dataclasses.dataclass(frozen=True)
class _Work:
    """How a sweep's units are made and where they run."""

    executor: Executor
    options: dict[str, Any]
    runner: TrialRunner
    jobs: int
    vectorize: str
    devices: int | None


def _run_locked(
    spec: SweepSpec,
    out: Path,
    work: _Work,
    overwrite: bool,
    command: str,
    say: Log,
    plots: bool,
    run_plots: bool,
    stacking: bool,
    stack: int | None,
    report: TrialReport,
) -> list[TrialResult]:
    results = {trial.name: TrialResult(trial, PENDING) for trial in spec.trials}
    todo: list[Trial] = []
    for trial in spec.trials:
        metrics = finished_metrics(trial, out / trial.name, overwrite=overwrite)
        if metrics is None:
            todo.append(trial)
        else:
            info = read_info(out / trial.name)
            seconds = info.get("total_seconds")
            if seconds is not None and isinstance(info.get("stack"), dict):  # its share of the group's time
                seconds = seconds / max(1, int(info["stack"].get("size", 1)))
            results[trial.name] = TrialResult(trial, FINISHED, metrics, seconds=seconds, reused=True)
            say(_describe(results[trial.name]))
            report(trial, "")
    if spec.source and Path(spec.source).is_file():
        atomic_write_text(out / "sweep.toml", Path(spec.source).read_text(encoding="utf-8"))

    def write() -> None:
        write_results(spec, list(results.values()), out, command=command)

    def record(trial: Trial, outcome: Outcome) -> None:
        status, metrics, error, trace, seconds = outcome
        run_dir = out / trial.name
        if status == FINISHED:
            assert metrics is not None
            record_finished_trial(run_dir, trial.config, metrics, seconds)
        else:
            record_failed_trial(run_dir, error, trace)
        results[trial.name] = TrialResult(trial, status, metrics, error, seconds)
        say(_describe(results[trial.name]))
        write()
        report(trial, group_of.get(trial.name, ""))  # to the trackers, from the recorded folder

    def announce(index: int, what: str) -> None:
        group = units[index].trials
        if not work.executor.remote:  # the unit writes its run directories in place
            for trial in group:
                begin_trial(out / trial.name)
        first = positions[group[0].name]
        if len(group) == 1:
            say(f"[{first}/{len(todo)}] {group[0].name} ({group[0].phase}): {what}")
        else:
            names = ", ".join(trial.name for trial in group)
            say(f"[{first}–{first + len(group) - 1}/{len(todo)}] stacked group of {len(group)} ({names}): {what}")

    def finished(index: int, result: UnitResult) -> None:
        group = units[index].trials
        for number, (trial, outcome) in enumerate(zip(group, result.outcomes, strict=True)):
            if result.files is not None:  # trained elsewhere: this process alone writes the sweep folder
                write_returned_files(out / trial.name, result.files[number])
            elif work.executor.remote:  # nothing came back (the task was lost): its error still needs a folder
                begin_trial(out / trial.name)
            record(trial, outcome)
        if result.worker:
            names = group[0].name if len(group) == 1 else f"{group[0].name}–{group[-1].name}"
            say(f"{names} done on worker {result.worker} in {result.seconds:.1f} s")
            per_worker[result.worker] = per_worker.get(result.worker, 0) + len(group)

    groups = plan_groups(todo, stack) if stacking else [[trial] for trial in todo]
    # positions follow the order in which the trials train (a group's trials one after another)
    positions = {trial.name: position for position, trial in enumerate((t for g in groups for t in g), 1)}
    units = [
        Unit(work.runner, tuple(g), tuple(out / t.name for t in g), run_plots, work.vectorize, work.devices)
        for g in groups
    ]
    per_worker: dict[str, int] = {}
    started = time.perf_counter()
    group_of = {t.name: "+".join(m.name for m in g) for g in groups if len(g) > 1 for t in g}
    write()
    try:
        if units:
            run = work.executor.run
            run(units, jobs=work.jobs, options=work.options, announce=announce, finished=finished)
    finally:
        if per_worker:
            counts = ", ".join(f"{worker} {count}" for worker, count in sorted(per_worker.items()))
            say(f"trials per worker: {counts}; sweep wall time {time.perf_counter() - started:.1f} s")
        if plots:
            write_plots(spec, list(results.values()), out)
        write()
    return list(results.values())


__all__ = [
    "SWEEP_FILES",
    "Log",
    "check_sweep_inputs",
    "config_differences",
    "default_stack",
    "finished_metrics",
    "run_sweep",
    "train_trial",
]
