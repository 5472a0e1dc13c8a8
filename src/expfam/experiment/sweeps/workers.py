r"""Where a sweep's units of work run: one trial with its runner, or a stacked group, here or in worker processes.

A [`Unit`][expfam.experiment.sweeps.workers.Unit] is what one worker trains; its
[`attempt`][expfam.experiment.sweeps.workers.Unit.attempt] returns plain outcomes
`(status, metrics, error, traceback, seconds)` per trial, so it runs in a spawned process too.
[`run_parallel`][expfam.experiment.sweeps.workers.run_parallel] runs units `jobs` at a time in spawned
worker processes it starts and tracks itself (`multiprocessing.Process`): on Ctrl-C (which reaches
only the parent: workers ignore SIGINT) it stops every worker with SIGTERM, which a training run turns
into a clean interrupt (checkpoint, status `interrupted`), and waits for them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
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


def _work(tasks: Any, results: Any) -> None:
    """A worker process: attempt each `(index, unit)` of `tasks` until `None`, posting
    `("start", pid, index, None)` before and `("done", pid, index, outcomes)` after each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the process group; only the parent handles it
    pid = os.getpid()
    while (task := tasks.get()) is not None:
        index, unit = task
        results.put(("start", pid, index, None))
        results.put(("done", pid, index, unit.attempt()))


def run_parallel(units: Sequence[Unit], jobs: int, record: Callable[[Trial, Outcome], None]) -> None:
    """Attempt `units` in at most `jobs` spawned worker processes, calling `record(trial, outcome)` in this
    process as each unit ends.

    A worker that dies (killed, out of memory) fails the unit it held (`worker process died`); the other
    workers go on, and units nobody is left to run fail the same way.

    Raises:
        KeyboardInterrupt: after stopping every worker with SIGTERM and waiting for it (at most
            `STOP_TIMEOUT` seconds each).
    """
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    count = min(jobs, len(units))
    for index, unit in enumerate(units):
        tasks.put((index, unit))
    for _ in range(count):
        tasks.put(None)
    workers = [context.Process(target=_work, args=(tasks, results), name=f"expfam-sweep-{i}") for i in range(count)]
    holding: dict[int | None, int] = {}  # worker pid -> index of the unit it trains
    left = set(range(len(units)))

    def finish(index: int, outcomes: Sequence[Outcome]) -> None:
        if index not in left:  # already failed as its worker's death was seen first
            return
        left.discard(index)
        for trial, outcome in zip(units[index].trials, outcomes, strict=True):
            record(trial, outcome)

    def died(index: int, why: str) -> None:
        finish(index, [(FAILED, None, f"worker process died: {why}", "", float("nan"))] * len(units[index].trials))

    try:
        for worker in workers:
            worker.start()
        while left:
            try:
                kind, pid, index, payload = results.get(timeout=0.5)
            except queue.Empty:
                for worker in workers:
                    if worker.exitcode not in (None, 0) and worker.pid in holding:
                        died(holding.pop(worker.pid), f"exit code {worker.exitcode}")
                if not any(worker.is_alive() for worker in workers) and results.empty():
                    for index in sorted(left):
                        died(index, "no worker process is left")
                continue
            if kind == "start":
                holding[pid] = index
            else:
                holding.pop(pid, None)
                finish(index, payload)
    except BaseException:
        # Ctrl-C reaches only this process (workers ignore SIGINT): stop the workers with SIGTERM, which
        # a training run turns into a clean interrupt (checkpoint, status "interrupted"), then wait for them
        tasks.cancel_join_thread()
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM
        for worker in workers:
            if worker.pid is not None:  # started
                worker.join(timeout=STOP_TIMEOUT)
        raise
    for worker in workers:
        worker.join()


__all__ = ["Outcome", "TrialRunner", "Unit", "attempt_group", "attempt_trial", "run_parallel"]
