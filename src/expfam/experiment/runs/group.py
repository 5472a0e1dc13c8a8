r"""A stacked group: runs that share every shape, trained in one program, each into its own run directory.

[`train_group`][expfam.experiment.runs.group.train_group] prepares the group once
([`Preparer`][expfam.experiment.prepare.Preparer]: each distinct data split loaded and the shared model
built once), trains the runs together ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]) and writes
each run's directory with the same [`RunRecorder`][expfam.experiment.runs.recorder.RunRecorder] a solo run
uses, so the files, history and metrics are a solo run's. Which runs stack is the sweep's plan
([`expfam.experiment.sweeps.plan`][expfam.experiment.sweeps.plan]).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from expfam.errors import TrainingDivergedError
from expfam.experiment.config import RunConfig, warn_about_config
from expfam.experiment.prepare import PreparedRun, Preparer
from expfam.experiment.runs.lock import writable_run_dir
from expfam.experiment.runs.recorder import RunRecorder, sigterm_as_interrupt, write_start
from expfam.experiment.train.loop import train_stacked
from expfam.plugins import Registry, get_registry

#: What [`train_group`][expfam.experiment.runs.group.train_group] gives per trial: its test metrics, or the error that stopped it.
GroupOutcome = dict[str, float] | Exception


def train_group(
    configs: Sequence[RunConfig],
    run_dirs: Sequence[Path | None],
    *,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
    registry: Registry | None = None,
    vectorize: str = "auto",
    devices: int | None = None,
) -> list[GroupOutcome]:
    """Train stackable runs together, each into its own run directory, as [`train_run`][expfam.experiment.runs.solo.train_run] would.

    Every run is prepared (checked, data loaded, model built: once for the runs that share them) before any
    training; a run whose preparation fails is reported as its error and the others go on. Run directories
    are (re)created as [`train_run`][expfam.experiment.runs.solo.train_run] with `overwrite=True` does. `run.json` records the group (`stack`: its size and the run's place in it).
    `devices > 1` spreads the trials over that many devices.

    Returns:
        Per run, its test metrics, or the exception that stopped it (a
        [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] for a run that diverged: its
        directory holds the last finite parameters, as a solo run's does).

    Raises:
        KeyboardInterrupt: after checkpointing every running trial and marking it `interrupted`.
    """
    registry = registry or get_registry()
    preparer = Preparer(registry)  # the group's data and model, loaded and built once
    say = log or (lambda text: None)
    outcomes: list[GroupOutcome | None] = [None] * len(configs)
    members: list[tuple[int, PreparedRun, RunRecorder]] = []
    with contextlib.ExitStack() as locks:  # each run directory locked for the group's life
        for index, (config, run_dir) in enumerate(zip(configs, run_dirs, strict=True)):
            try:
                prepared = preparer.prepare(config)
                directory = locks.enter_context(writable_run_dir(run_dir, True)) if run_dir is not None else None
                if directory is not None:
                    write_start(directory, prepared)
            except Exception as error:  # a trial that cannot start is recorded; the group goes on
                outcomes[index] = error
                continue
            warn_about_config(prepared.config)
            stack_info = {"stack": {"size": len(configs), "index": index}}
            members.append((index, prepared, RunRecorder(prepared, directory, [], plots=plots, info=stack_info)))
        if members:
            _train_members(members, outcomes, say, registry, vectorize, devices)
    return [outcome if outcome is not None else RuntimeError("not trained") for outcome in outcomes]


def _train_members(
    members: list[tuple[int, PreparedRun, RunRecorder]],
    outcomes: list[GroupOutcome | None],
    say: Callable[[str], None],
    registry: Registry,
    vectorize: str,
    devices: int | None,
) -> None:
    first = members[0][1]
    model = first.model
    train_configs = [prepared.config.train for _, prepared, _ in members]
    say(f"stacked group of {len(members)}: {first.split.describe()}; {train_configs[0].n_steps} steps each")
    params = [recorder.begin() for _, _, recorder in members]
    intervals = [config.checkpoint_every for config in train_configs]
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            results = train_stacked(
                model,
                params,
                [prepared.split.x_train for _, prepared, _ in members],
                train_configs,
                callbacks=[recorder.callback for _, _, recorder in members],
                registry=registry,
                checkpoints=[
                    recorder.checkpoint if every > 0 else None
                    for (_, _, recorder), every in zip(members, intervals, strict=True)
                ],
                checkpoint_every=intervals,
                vectorize=vectorize,
                devices=devices,
            )
    except KeyboardInterrupt:
        for _, _, recorder in members:
            recorder.interrupted()
        raise
    train_seconds = time.perf_counter() - started
    for (index, _, recorder), start_params, result in zip(members, params, results, strict=True):
        if isinstance(result, TrainingDivergedError):
            recorder.diverged(result, start_params)
            outcomes[index] = result
            continue
        try:
            outcomes[index] = recorder.finish(result, train_seconds)
        except Exception as error:  # evaluation or writing failed for this trial only
            outcomes[index] = error


__all__ = ["GroupOutcome", "train_group"]
