r"""Executors: where a sweep's units of work run (this machine's processes, a cluster, ...), as plugins.

A sweep ([`run_sweep`][expfam.experiment.sweeps.run.run_sweep]) hands its
[`Unit`][expfam.experiment.sweeps.workers.Unit]s — one stacked group each, or one trial with `--no-stack` —
to an executor looked up by name in the plugin registry (the `expfam_executors` hook). The executor calls

- `announce(index, what)` when unit `index` is queued or starts (`what` is `"queued"` or `"training"`:
  the sweep prints its line),
- `finished(index, result)` in the sweep's own process when the unit ends, with a
  [`UnitResult`][expfam.experiment.sweeps.executor.UnitResult]: each trial's outcome and, from an executor
  whose units train elsewhere (`remote = True`), each trial's run-directory files. The sweep writes those into
  its folder itself ([`write_returned_files`][expfam.experiment.sweeps.remote.write_returned_files]), so a
  worker never writes into the sweep folder.

`check(options)` refuses options before anything is written; `run` returns when every unit has been reported; it raises `KeyboardInterrupt` after stopping its work on
Ctrl-C, [`ExecutorLostError`][expfam.experiment.sweeps.executor.ExecutorLostError] when the engine itself is
gone (finished units have been reported and are kept), and
[`ConfigurationError`][expfam.errors.ConfigurationError] for options it cannot use, before any unit starts.

The built-in `local` executor ([`LocalExecutor`][expfam.experiment.sweeps.executor.LocalExecutor]) runs the
units here, one after another or `jobs` at a time in spawned processes, writing each run directory in place.

Examples:
    >>> from expfam.plugins import get_registry
    >>> executor = get_registry().executor("local")
    >>> executor.name, executor.remote
    ('local', False)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from expfam.errors import ConfigurationError, RunFailedError

if TYPE_CHECKING:  # the plugin module imports this one: it stays light (no JAX) until a sweep runs
    from expfam.experiment.sweeps.workers import Outcome, Unit

#: `announce(index, what)`: unit `index` is `"queued"` or `"training"`.
Announce = Callable[[int, str], None]


@dataclasses.dataclass(frozen=True)
class UnitResult:
    """What one unit of work gave back.

    Attributes:
        outcomes: per trial `(status, metrics, error, traceback, seconds)`
            (`Outcome` of [`expfam.experiment.sweeps.workers`][expfam.experiment.sweeps.workers]).
        files: per trial its run directory's files, `{file name: bytes}`, from an executor whose units
            train elsewhere; `None` when the unit wrote its run directories in place.
        worker: the name of the worker that trained the unit (`""`: this machine; no progress line).
        seconds: the unit's wall time on its worker.
    """

    outcomes: tuple[Outcome, ...]
    files: tuple[Mapping[str, bytes], ...] | None = None
    worker: str = ""
    seconds: float = math.nan


#: `finished(index, result)`: unit `index` ended; called in the sweep's process.
Finished = Callable[[int, UnitResult], None]


class ExecutorLostError(RunFailedError):
    """The engine an executor runs on went away (a scheduler stopped, a connection broke); finished units are kept."""


@runtime_checkable
class Executor(Protocol):
    """Where a sweep's units run. A plugin returns instances from `expfam_executors`.

    Attributes:
        name: the registry name (`--executor NAME`).
        description: one line for `expfam plugins`.
        remote: units train elsewhere and return their run-directory files in
            [`UnitResult.files`][expfam.experiment.sweeps.executor.UnitResult] (`False`: each unit writes its
            run directories in place, so they must be reachable from where it runs).
    """

    name: str
    description: str
    remote: bool

    def check(self, options: Mapping[str, Any]) -> None:
        """Refuse options this executor cannot use (or a missing dependency), before anything is written.

        Raises:
            ConfigurationError: naming the option (or the package to install) and the fix.
        """
        ...

    def run(
        self,
        units: Sequence[Unit],
        *,
        jobs: int,
        options: Mapping[str, Any],
        announce: Announce,
        finished: Finished,
    ) -> None:
        """Run every unit, calling `announce` and `finished` (see the module's description)."""
        ...


def refuse_options(executor: str, options: Mapping[str, Any], allowed: Sequence[str] = ()) -> None:
    """Refuse executor options `executor` does not take, before any work.

    Raises:
        ConfigurationError: naming the first unknown option and the ones allowed.
    """
    unknown = [key for key in options if key not in allowed]
    if unknown:
        taken = ", ".join(allowed) if allowed else "none"
        raise ConfigurationError(
            f"executor {executor!r} takes no option {unknown[0]!r} (its options: {taken}); "
            "remove it from [executor] or the command line, or choose another --executor",
            offending=unknown[0],
        )


class LocalExecutor:
    """This machine: units one after another (`jobs=1`) or `jobs` at a time in spawned processes.

    Each unit writes its run directories in place, as `expfam sweep` always has
    ([`run_parallel`][expfam.experiment.sweeps.workers.run_parallel]).
    """

    name = "local"
    description = "this machine's processes (--jobs at a time); the default"
    remote = False

    def check(self, options: Mapping[str, Any]) -> None:
        """`local` takes no options; see [`Executor.check`][expfam.experiment.sweeps.executor.Executor.check]."""
        refuse_options(self.name, options)

    def run(
        self,
        units: Sequence[Unit],
        *,
        jobs: int,
        options: Mapping[str, Any],
        announce: Announce,
        finished: Finished,
    ) -> None:
        """Train `units` here; see [`Executor.run`][expfam.experiment.sweeps.executor.Executor.run]."""
        from expfam.experiment.sweeps.workers import run_parallel

        refuse_options(self.name, options)
        if jobs == 1:
            for index, unit in enumerate(units):
                announce(index, "training")
                finished(index, UnitResult(tuple(unit.attempt())))
            return
        for index in range(len(units)):
            announce(index, "queued")
        run_parallel(units, jobs, lambda index, outcomes: finished(index, UnitResult(tuple(outcomes))))


__all__ = [
    "Announce",
    "Executor",
    "ExecutorLostError",
    "Finished",
    "LocalExecutor",
    "UnitResult",
    "refuse_options",
]
