"""What became of a sweep's trials: their status names and [`TrialResult`][expfam.experiment.trials.TrialResult].

Shared by [`expfam.experiment.sweep`][expfam.experiment.sweep] (which runs trials) and
[`expfam.experiment.report`][expfam.experiment.report] (which writes them up), so neither imports the other's
internals and the two modules form no cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from expfam.experiment.sweep_spec import Trial

FINISHED, FAILED, PENDING = "finished", "failed", "pending"


@dataclass(frozen=True)
class TrialResult:
    """What became of a trial.

    Attributes:
        trial: the trial.
        status: `"finished"`, `"failed"` or `"pending"` (not run yet, e.g. after an interruption).
        metrics: the test metrics of a finished trial
            ([`expfam.experiment.evaluation.evaluate`][expfam.experiment.evaluation.evaluate]).
        error: `"ErrorType: message"` of a failed trial.
        seconds: wall time of the attempt; for a trial read back, `total_seconds` of
            its `run.json` where there is one.
        reused: the trial had finished earlier and was read back from its run directory.
        spread: for a repeated configuration's summary
            ([`expfam.experiment.report.by_configuration`][expfam.experiment.report.by_configuration]), the
            standard deviation over its seeds of each metric in `metrics` (then the means).
        repeats: how many seeds `metrics` summarises.
    """

    trial: Trial
    status: str
    metrics: Mapping[str, float] | None = None
    error: str = ""
    seconds: float | None = None
    reused: bool = False
    spread: Mapping[str, float] | None = None
    repeats: int = 1
