r"""Units that train elsewhere: the worker trains into its own temporary folder and returns the files' bytes;
the sweep's process alone writes them into the sweep folder.

[`attempt_elsewhere`][expfam.experiment.sweeps.remote.attempt_elsewhere] is what a remote executor's task runs
on a worker; [`write_returned_files`][expfam.experiment.sweeps.remote.write_returned_files] is what the sweep
does with the result. The files of a trial are written into a hidden staging folder next to the run directory
with the usual atomic writes, `run.json` (which says `completed`) last, and the folder is then renamed into place:
the sweep folder never holds a half-written run directory, whatever stops the worker or the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from expfam.experiment.runs.atomic import RunDirectoryError, atomic_open
from expfam.experiment.runs.layout import INFO_FILE
from expfam.experiment.sweeps.executor import UnitResult
from expfam.experiment.sweeps.workers import Unit

#: Prefix of the hidden folders a trial's returned files are staged in (`.<run name>.incoming-…`).
STAGING = ".incoming-"


def read_run_files(run_dir: Path) -> dict[str, bytes]:
    """The plain files of a run directory, `{name: bytes}` (hidden files such as its lock left out)."""
    if not run_dir.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}


def with_absolute_data(unit: Unit) -> Unit:
    """`unit` with each trial's `[data] data` path made absolute here, on the client, before it travels.

    A worker resolves a relative path against its own working directory; the client's is the one the user
    meant (and the one a local run records in `config.toml`).
    """
    trials = []
    for trial in unit.trials:
        data = trial.config.data
        if data.data and not Path(data.data).expanduser().is_absolute():
            absolute = dataclasses.replace(data, data=str(Path(data.data).expanduser().resolve()))
            trial = dataclasses.replace(trial, config=dataclasses.replace(trial.config, data=absolute))
        trials.append(trial)
    return dataclasses.replace(unit, trials=tuple(trials))


def attempt_elsewhere(unit: Unit, worker: str = "") -> UnitResult:
    """Train `unit` into a temporary folder of this machine and return its outcomes with every trial's files.

    The unit's own run directories (paths in the sweep folder, which may not exist here) are not touched.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="expfam-unit-") as folder:
        run_dirs = tuple(Path(folder) / trial.name for trial in unit.trials)
        for run_dir in run_dirs:
            run_dir.mkdir()
        outcomes = tuple(dataclasses.replace(unit, run_dirs=run_dirs).attempt())
        files = tuple(read_run_files(run_dir) for run_dir in run_dirs)
    return UnitResult(outcomes, files, worker=worker, seconds=time.perf_counter() - started)


def _check_name(run_dir: Path, name: str) -> None:
    if not name or name.startswith(".") or Path(name).name != name or name in {".", ".."}:
        raise RunDirectoryError(
            f"a worker returned the file {name!r} for {str(run_dir)!r}, which is not a plain file name; "
            "the executor plugin is broken — report it to its authors",
            offending=name,
        )


def write_returned_files(run_dir: Path, files: Mapping[str, bytes]) -> None:
    """Put a trial's returned files into `run_dir` at once, replacing what an earlier attempt left there.

    The files are written atomically into a hidden staging folder beside `run_dir` (`run.json` last) and the
    folder is renamed into place; an earlier folder is moved aside first and removed after. Staging folders a
    killed sweep left for this run are removed first.

    Raises:
        RunDirectoryError: a returned name that is not a plain file name.
        RunWriteError: a file could not be written (the run directory is left as it was).
    """
    for name in files:
        _check_name(run_dir, name)
    parent = run_dir.parent
    for stale in parent.glob(f".{run_dir.name}{STAGING}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{run_dir.name}{STAGING}"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700; a run directory has the usual permissions
        for name in sorted(files, key=lambda file: file == INFO_FILE):  # run.json, the "completed", last
            with atomic_open(staging / name, "wb") as handle:
                handle.write(files[name])
        aside = parent / f".{run_dir.name}{STAGING}old" if run_dir.exists() else None
        if aside is not None:
            run_dir.rename(aside)
        staging.rename(run_dir)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = ["STAGING", "attempt_elsewhere", "read_run_files", "with_absolute_data", "write_returned_files"]
