r"""Sweeps in stacked groups: which trials train together, in the order they train.

Trials stack ([`expfam.experiment.train.loop`][expfam.experiment.train.loop]) when they share every shape: the
`[model]` section, the `[data]` section but the seed, and the training config but the per-trial numbers
(`expfam.experiment.train.step.TRIAL_NUMBERS`: learning rate and its warmup, weight decay, loss weights, KL and
conjugation warmups, seed, checkpoint interval). [`plan_groups`][expfam.experiment.sweeps.plan.plan_groups]
groups a sweep's trials by that key, in sweep order, at most `cap` per group;
[`expfam.experiment.runs.group.train_group`][expfam.experiment.runs.group.train_group] trains one group into
its trials' run directories.

Examples:
    >>> from expfam.experiment.sweeps.spec import parse_sweep
    >>> spec = parse_sweep({"phases": [{"name": "P", "grid": {"learning_rate": [1e-3, 2e-3], "n_latent": [4, 8]}}]})
    >>> [[trial.name for trial in group] for group in plan_groups(spec.trials)]
    [['T1', 'T3'], ['T2', 'T4']]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from pathlib import Path

from expfam.experiment.config import DataConfig, RunConfig
from expfam.experiment.sweeps.spec import Trial
from expfam.experiment.train.step import step_shape


def stack_key(config: RunConfig) -> Hashable:
    """Trials with equal keys can train in one stacked program (everything but the per-trial numbers)."""
    return (config.model, dataclasses.replace(config.data, data=_resolved(config.data)), step_shape(config.train))


def _resolved(data: DataConfig) -> str:
    return str(Path(data.data).expanduser().resolve()) if data.data else ""


def plan_groups(trials: Sequence[Trial], cap: int | None = None) -> list[list[Trial]]:
    """`trials` in stackable groups ([`stack_key`][expfam.experiment.sweeps.plan.stack_key]), each in sweep order, at most `cap` long (`None`: no cap).

    Groups come in the order of their first trial; a group longer than `cap` is cut into
    consecutive pieces.
    """
    groups: dict[Hashable, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(stack_key(trial.config), []).append(trial)
    size = cap if cap is not None and cap > 0 else max((len(group) for group in groups.values()), default=1)
    return [group[start : start + size] for group in groups.values() for start in range(0, len(group), size)]


__all__ = ["plan_groups", "stack_key"]
