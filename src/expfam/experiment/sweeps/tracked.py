r"""A sweep in its trackers: the sweep as a parent run, each trial as a child, reported by the client.

The sweep's client (the process running [`run_sweep`][expfam.experiment.sweeps.run.run_sweep]) reports
each trial once its outcome is recorded, from the trial's folder: its configuration, every
`history.csv` row, `metrics.json`, the folder's files and `run.json`'s status. Trials of a stacked
group and trials trained by worker processes are reported the same way, by the client, so no worker
needs a tracker. A trial already finished by an earlier invocation is reported too (a tracker that
holds it already leaves it as it is). The parent run ends last, with the sweep's own files
(`report.md`, `results.csv`, `sweep.toml`, `plots/`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.files import read_history, read_metrics
from expfam.experiment.runs.layout import ERROR_FILE, read_info
from expfam.experiment.sweeps.spec import SweepSpec, Trial
from expfam.experiment.tracking import Tracking, config_params, run_files
from expfam.tracker import COMPLETED, DIVERGED, END_STATUSES, FAILED, INTERRUPTED, RunEnd, RunStart, Tracker

#: `report(trial, group)`: report a recorded trial (`group`: its stacked group's members, `""` if alone).
TrialReport = Callable[[Trial, str], None]


def trial_end(run_dir: Path) -> RunEnd:
    """How a recorded trial ended, from its `run.json` (and `error.txt`): a trial that left no status failed."""
    try:
        info = read_info(run_dir)
    except (RunDirectoryError, OSError):
        info = {}
    status = info.get("status")
    found = info.get("diverged")
    diverged: dict[str, object] = found if isinstance(found, dict) else {}
    error = ""
    ended = _modified(run_dir / "run.json")
    with contextlib.suppress(OSError):
        error = (run_dir / ERROR_FILE).read_text(encoding="utf-8").partition("\n")[0]
    if status == DIVERGED:
        step = diverged.get("step")
        term = str(diverged.get("term", ""))
        return RunEnd(DIVERGED, step if isinstance(step, int) else None, term, error, ended)
    if status in END_STATUSES and status != FAILED:
        return RunEnd(str(status), step=info.get("steps"), message=error, ended=ended)
    return RunEnd(FAILED, message=error or str(info.get("error", "")), ended=ended)


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def trial_start(trial: Trial, run_dir: Path, sweep: str, group: str = "") -> RunStart:
    """A trial's start: its configuration, and the sweep, phase, stacked group and block set as tags."""
    tags = {
        "expfam.kind": "trial",
        "expfam.sweep": sweep,
        "expfam.phase": trial.phase,
        "expfam.blocks": str(trial.config.model.block),
    }
    if group:
        tags["expfam.group"] = group
    description = f"{trial.phase}" + (f": {trial.note}" if trial.note else "")
    params = config_params(trial.config)
    started = _modified(run_dir / "config.toml")  # written when the trial started
    return RunStart(trial.name, params, description, tags, run_dir.resolve(), resumed=True, started=started)


def report_trial(tracking: Tracking, trial: Trial, run_dir: Path, sweep: str, group: str = "") -> None:
    """Send a recorded trial to the trackers, from its folder (a child of the sweep's run)."""
    if not tracking.active:
        return
    end = trial_end(run_dir)
    try:
        rows = read_history(run_dir)
    except (RunDirectoryError, OSError):
        rows = []
    try:
        metrics = read_metrics(run_dir) if end.status == COMPLETED else None
    except (RunDirectoryError, OSError):
        metrics = None
    tracking.start(trial_start(trial, run_dir, sweep, group))
    for row in rows:
        tracking.log_row(row)
    if metrics:
        tracking.log_metrics(metrics)
    tracking.log_artifacts(run_files(run_dir))
    tracking.end(end)


def _sweep_files(out: Path, names: Sequence[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name in names:
        path = out / name
        if path.is_file():
            files[name] = path
        elif path.is_dir():
            files.update({f"{name}/{key}": value for key, value in run_files(path).items()})
    return files


@contextlib.contextmanager
def tracked_sweep(
    trackers: Sequence[Tracker], spec: SweepSpec, out: Path, files: Sequence[str]
) -> Iterator[TrialReport]:
    """Open the sweep's run in `trackers`; yields `report(trial, group)`; ends the run with the sweep's `files`.

    The sweep's run ends `completed` when the block ends (whatever its trials' statuses), `interrupted`
    on Ctrl-C and `failed` on any other error; the error itself is not caught.
    """
    tracking = Tracking(trackers)
    sweep = spec.title or out.name
    tags = {"expfam.kind": "sweep", "expfam.sweep": sweep, "expfam.blocks": str(spec.base.model.block)}
    params = config_params(spec.base)
    tracking.start(RunStart(out.name, params, spec.description or sweep, tags, out.resolve(), resumed=True))

    def report(trial: Trial, group: str) -> None:
        report_trial(tracking, trial, out / trial.name, sweep, group)

    end = RunEnd(FAILED)
    try:
        yield report
        end = RunEnd(COMPLETED, step=len(spec.trials))
    except KeyboardInterrupt:
        end = RunEnd(INTERRUPTED)
        raise
    except Exception as error:
        end = RunEnd(FAILED, message=" ".join(f"{type(error).__name__}: {error}".split()))
        raise
    finally:
        tracking.log_artifacts(_sweep_files(out, files))
        tracking.end(end)


__all__ = ["TrialReport", "report_trial", "tracked_sweep", "trial_end", "trial_start"]
