r"""Where a sweep's units of work run: one trial with its runner, or a stacked group, here or in worker processes.

A [`Unit`][expfam.experiment.sweeps.workers.Unit] is what one worker trains; its
[`attempt`][expfam.experiment.sweeps.workers.Unit.attempt] returns plain outcomes
`(status, metrics, error, traceback, seconds)` per trial, so it runs in a spawned process too.
[`run_parallel`][expfam.experiment.sweeps.workers.run_parallel] runs units `jobs` at a time in spawned
worker processes it starts and tracks itself (`multiprocessing` processes and pipes): on Ctrl-C (which reaches
only the parent: workers ignore SIGINT) it stops every worker with SIGTERM, which a training run turns
into a clean interrupt (checkpoint, status `interrupted`), and waits for them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import signal
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from expfam.experiment.config import RunConfig
from expfam.experiment.runs.group import GroupOutcome, train_group
from expfam.experiment.sweeps.results import FAILED, FINISHED
from expfam.experiment.sweeps.spec import Trial

#: `runner(config, run_dir) -> metrics`: trains one trial into `run_dir`
#: (see [`train_trial`][expfam.experiment.sweeps.run.train_trial]).
TrialRunner = Callable[[RunConfig, Path], Mapping[str, float]]
#: What [`attempt_trial`][expfam.experiment.sweeps.workers.attempt_trial] returns: `(status, metrics, error, traceback, seconds)`.
Outcome = tuple[str, "Mapping[str, float] | None", str, str, float]
#: Seconds a stopped worker is given to checkpoint and mark its runs interrupted.
STOP_TIMEOUT = 30.0


def attempt_trial(runner: TrialRunner, config: RunConfig, run_dir: Path) -> Outcome:
    """Run one trial, catching its error: `(status, metrics, error, traceback, seconds)`.

    Module-level and returning plain values, so it runs in a spawned process too.
    """
    started = time.perf_counter()
    try:
        metrics = {key: _number(value) for key, value in runner(config, run_dir).items()}
    except Exception as error:  # a failed trial is recorded; the sweep goes on
        message = " ".join(f"{type(error).__name__}: {error}".split())
        return FAILED, None, message, traceback.format_exc(), time.perf_counter() - started
    return FINISHED, metrics, "", "", time.perf_counter() - started


def _number(value: Any) -> Any:
    try:
        return float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return value


def attempt_group(
    configs: Sequence[RunConfig],
    run_dirs: Sequence[Path],
    *,
    plots: bool = True,
    vectorize: str = "auto",
    devices: int | None = None,
) -> list[Outcome]:
    """Train a group, catching errors: per trial `(status, metrics, error, traceback, seconds)`.

    The stacked counterpart of
    [`attempt_trial`][expfam.experiment.sweeps.workers.attempt_trial]; module-level and
    returning plain values, so it runs in a spawned process too. `seconds` is each trial's share of the
    group's wall time (the group's time divided by its size), so the seconds of a sweep's trials add up to its
    wall time.
    """
    started = time.perf_counter()
    try:
        outcomes: list[GroupOutcome] = train_group(configs, run_dirs, plots=plots, vectorize=vectorize, devices=devices)
    except Exception as error:  # the whole group failed (e.g. compilation): every trial is recorded
        outcomes = [error] * len(configs)
        trace = traceback.format_exc()
    else:
        trace = ""
    seconds = (time.perf_counter() - started) / max(1, len(configs))  # each trial's share of the group's time
    rows: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            message = " ".join(f"{type(outcome).__name__}: {outcome}".split())
            detail = trace or "".join(traceback.format_exception(outcome))
            rows.append((FAILED, None, message, detail, seconds))
        else:
            rows.append((FINISHED, {key: float(value) for key, value in outcome.items()}, "", "", seconds))
    return rows


@dataclasses.dataclass(frozen=True)
class Unit:
    """What one worker trains: one trial with `runner`, or a stacked group of trials."""

    runner: TrialRunner
    trials: tuple[Trial, ...]
    run_dirs: tuple[Path, ...]
    run_plots: bool = True
    vectorize: str = "auto"
    devices: int | None = None

    def attempt(self) -> list[Outcome]:
        """Per trial `(status, metrics, error, traceback, seconds)`."""
        if len(self.trials) == 1:
            return [attempt_trial(self.runner, self.trials[0].config, self.run_dirs[0])]
        configs = [trial.config for trial in self.trials]
        return attempt_group(
            configs, self.run_dirs, plots=self.run_plots, vectorize=self.vectorize, devices=self.devices
        )


def _work(connection: Connection) -> None:
    """A worker process: attempt each `(index, unit)` received until `None`, sending back `(index, outcomes)`.

    Stopped by SIGTERM (a training run turns it into `KeyboardInterrupt` after checkpointing and marking
    its runs `interrupted`), it sends `(index, None)` and ends without a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the process group; only the parent handles it
    index = -1
    try:
        while (task := connection.recv()) is not None:
            index, unit = task
            connection.send((index, unit.attempt()))
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            connection.send((index, None))


def run_parallel(units: Sequence[Unit], jobs: int, record: Callable[[int, Sequence[Outcome]], None]) -> None:
    """Attempt `units` in at most `jobs` spawned worker processes, calling `record(index, outcomes)` in this
    process as unit `index` ends (one outcome per trial).

    Each worker has its own pipe and is handed its next unit when it returns one, so this process
    always knows which unit each worker holds. A worker that dies (killed, out of memory) fails the
    unit it held (`worker process died: exit code N`); the other workers go on, and units nobody is
    left to run fail the same way.

    Raises:
        KeyboardInterrupt: after stopping every worker with SIGTERM and waiting for it (at most
            `STOP_TIMEOUT` seconds each).
    """
    context = multiprocessing.get_context("spawn")
    pending = list(enumerate(units))[::-1]  # popped from the end: sweep order
    workers: list[tuple[BaseProcess, Connection]] = []
    holding: dict[int, int] = {}  # worker number -> index of the unit it trains

    def died(index: int, why: str) -> None:
        record(index, [(FAILED, None, f"worker process died: {why}", "", math.nan)] * len(units[index].trials))

    def hand_out(number: int) -> None:
        connection = workers[number][1]
        if pending:
            holding[number], unit = pending.pop()
            connection.send((holding[number], unit))
        else:
            connection.send(None)

    try:
        for number in range(min(jobs, len(units))):
            here, there = context.Pipe()
            worker: BaseProcess = context.Process(target=_work, args=(there,), name=f"expfam-sweep-{number}")
            worker.start()
            there.close()
            workers.append((worker, here))
            hand_out(number)
        while holding:
            ready = set(wait([connection for number, (_, connection) in enumerate(workers) if number in holding]))
            for number in list(holding):
                process, connection = workers[number]
                if connection not in ready:
                    continue
                try:
                    index, outcomes = connection.recv()
                except EOFError:  # the worker died holding its unit
                    process.join()
                    died(holding.pop(number), f"exit code {process.exitcode}")
                    continue
                del holding[number]
                if outcomes is None:  # the worker was interrupted (SIGTERM from outside): stop the sweep
                    raise KeyboardInterrupt(f"worker process {process.pid} was interrupted")
                record(index, outcomes)
                hand_out(number)
        for index, _ in pending[::-1]:  # every worker died: nobody is left to run these
            died(index, "no worker process is left")
    except BaseException:
        # Ctrl-C reaches only this process (workers ignore SIGINT): stop the workers with SIGTERM, which
        # a training run turns into a clean interrupt (checkpoint, status "interrupted"), then wait for them
        for process, _ in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM
        for process, _ in workers:
            process.join(timeout=STOP_TIMEOUT)
        raise
    for process, connection in workers:
        process.join()
        connection.close()


__all__ = ["Outcome", "TrialRunner", "Unit", "attempt_group", "attempt_trial", "run_parallel"]
