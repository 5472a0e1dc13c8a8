r"""Sweeps in stacked groups: which trials train together, and training a group into its run directories.

Trials stack ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]) when they share every shape: the
`[model]` section, the `[data]` section but the seed, and the training config but the per-trial numbers
(`expfam.experiment.train.step.TRIAL_NUMBERS`: learning rate and its warmup, weight decay, loss weights, KL and
conjugation warmups, seed, checkpoint interval). [`plan_groups`][expfam.experiment.stacking.plan_groups]
groups a sweep's trials by that key, in sweep order, at most `cap` per group;
[`train_group`][expfam.experiment.stacking.train_group] trains one group and writes each trial's own run
directory with the same [`RunRecorder`][expfam.experiment.pipeline.RunRecorder] a solo run uses, so the files,
history and metrics are a solo run's.

Examples:
    >>> from expfam.experiment.sweep_spec import parse_sweep
    >>> spec = parse_sweep({"phases": [{"name": "P", "grid": {"learning_rate": [1e-3, 2e-3], "n_latent": [4, 8]}}]})
    >>> [[trial.name for trial in group] for group in plan_groups(spec.trials)]
    [['T1', 'T3'], ['T2', 'T4']]
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from expfam.errors import TrainingDivergedError
from expfam.experiment.config import DataConfig, RunConfig, warn_about_config
from expfam.experiment.pipeline import (
    PreparedRun,
    RunRecorder,
    model_spec,
    prepare_run,
    sigterm_as_interrupt,
)
from expfam.experiment.run_lock import writable_run_dir
from expfam.experiment.runs import write_config, write_model_spec
from expfam.experiment.sweep_spec import Trial
from expfam.experiment.train.loop import train_stacked
from expfam.experiment.train.step import step_shape
from expfam.plugins import Registry, get_registry

#: What [`train_group`][expfam.experiment.stacking.train_group] gives per trial: its test metrics, or the error that stopped it.
GroupOutcome = dict[str, float] | Exception


def stack_key(config: RunConfig) -> Hashable:
    """Trials with equal keys can train in one stacked program (everything but the per-trial numbers)."""
    return (config.model, dataclasses.replace(config.data, data=_resolved(config.data)), step_shape(config.train))


def _resolved(data: DataConfig) -> str:
    return str(Path(data.data).expanduser().resolve()) if data.data else ""


def plan_groups(trials: Sequence[Trial], cap: int | None = None) -> list[list[Trial]]:
    """`trials` in stackable groups ([`stack_key`][expfam.experiment.stacking.stack_key]), each in sweep order, at most `cap` long (`None`: no cap).

    Groups come in the order of their first trial; a group longer than `cap` is cut into
    consecutive pieces.
    """
    groups: dict[Hashable, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(stack_key(trial.config), []).append(trial)
    size = cap if cap is not None and cap > 0 else max((len(group) for group in groups.values()), default=1)
    return [group[start : start + size] for group in groups.values() for start in range(0, len(group), size)]


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
    """Train stackable runs together, each into its own run directory, as [`train_run`][expfam.experiment.pipeline.train_run] would.

    Every run is prepared (checked, data loaded, model built) before any training; a run
    whose preparation fails is reported as its error and the others go on. Run directories
    are (re)created as [`train_run`][expfam.experiment.pipeline.train_run] with `overwrite=True`
    does. `run.json` records the group (`stack`: its size and the run's place in it).
    `devices > 1` spreads the trials over that many devices.

    Returns:
        Per run, its test metrics, or the exception that stopped it (a
        [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] for a run that diverged: its
        directory holds the last finite parameters, as a solo run's does).

    Raises:
        KeyboardInterrupt: after checkpointing every running trial and marking it `interrupted`.
    """
    registry = registry or get_registry()
    say = log or (lambda text: None)
    outcomes: list[GroupOutcome | None] = [None] * len(configs)
    members: list[tuple[int, PreparedRun, RunRecorder]] = []
    with contextlib.ExitStack() as locks:  # each run directory locked for the group's life
        for index, (config, run_dir) in enumerate(zip(configs, run_dirs, strict=True)):
            try:
                prepared = prepare_run(config, registry=registry)
                directory = locks.enter_context(writable_run_dir(run_dir, True)) if run_dir is not None else None
                if directory is not None:
                    write_config(directory, prepared.config)
                    write_model_spec(directory, model_spec(prepared, registry))
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


def attempt_group(
    configs: Sequence[RunConfig],
    run_dirs: Sequence[Path],
    *,
    plots: bool = True,
    vectorize: str = "auto",
    devices: int | None = None,
) -> list[tuple[str, dict[str, float] | None, str, str, float]]:
    """Train a group, catching errors: per trial `(status, metrics, error, traceback, seconds)`.

    The stacked counterpart of
    [`expfam.experiment.sweep.attempt_trial`][expfam.experiment.sweep.attempt_trial]; module-level and
    returning plain values, so it runs in a spawned process too. `seconds` is each trial's share of the
    group's wall time (the group's time divided by its size), so the seconds of a sweep's trials add up to its
    wall time.
    """
    from expfam.experiment.trials import FAILED, FINISHED

    started = time.perf_counter()
    try:
        outcomes: list[GroupOutcome] = train_group(configs, run_dirs, plots=plots, vectorize=vectorize, devices=devices)
    except Exception as error:  # the whole group failed (e.g. compilation): every trial is recorded
        outcomes = [error] * len(configs)
        trace = traceback.format_exc()
    else:
        trace = ""
    seconds = (time.perf_counter() - started) / max(1, len(configs))  # each trial's share of the group's time
    rows: list[tuple[str, dict[str, float] | None, str, str, float]] = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            message = " ".join(f"{type(outcome).__name__}: {outcome}".split())
            detail = trace or "".join(traceback.format_exception(outcome))
            rows.append((FAILED, None, message, detail, seconds))
        else:
            rows.append((FINISHED, {key: float(value) for key, value in outcome.items()}, "", "", seconds))
    return rows


__all__ = ["GroupOutcome", "attempt_group", "plan_groups", "stack_key", "train_group"]
