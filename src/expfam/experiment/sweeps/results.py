r"""What became of a sweep's trials: their status names, [`TrialResult`][expfam.experiment.sweeps.results.TrialResult],
and a repeated configuration's seeds summarised ([`by_configuration`][expfam.experiment.sweeps.results.by_configuration]).

Shared by [`expfam.experiment.sweeps.run`][expfam.experiment.sweeps.run] (which runs trials),
[`expfam.experiment.sweeps.report`][expfam.experiment.sweeps.report] and
[`expfam.experiment.sweeps.plots`][expfam.experiment.sweeps.plots] (which write them up), so none imports
another's internals and the modules form no cycle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from expfam.experiment.sweeps.spec import Trial

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
            ([`expfam.experiment.sweeps.results.by_configuration`][expfam.experiment.sweeps.results.by_configuration]), the
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


def by_configuration(results: Sequence[TrialResult]) -> list[TrialResult]:
    r"""One result per configuration, in order: a repeated configuration's seeds summarised.

    A configuration run with `R` seeds (`configuration`)
    becomes one result named after it, with `metrics` the mean over its finished seeds and
    `spread` the sample standard deviation $\sqrt{\sum_r (m_r - \bar m)^2 / (R - 1)}$
    (0 for one seed). It is finished when every seed finished, failed when one failed
    (naming it), else pending. Results of runs that are not repeated pass through unchanged.
    """
    groups: dict[str, list[TrialResult]] = {}
    for result in results:
        groups.setdefault(result.trial.label, []).append(result)
    summary: list[TrialResult] = []
    for label, members in groups.items():
        if len(members) == 1 and not members[0].trial.configuration:
            summary.append(members[0])
            continue
        finished = [m.metrics for m in members if m.status == FINISHED and m.metrics is not None]
        keys = [key for key in (finished[0] if finished else {}) if all(key in m for m in finished)]
        means, spread = {}, {}
        for key in keys:
            values = [float(m[key]) for m in finished]
            means[key] = math.fsum(values) / len(values)
            spread[key] = (
                math.sqrt(math.fsum((v - means[key]) ** 2 for v in values) / (len(values) - 1))
                if len(values) > 1
                else 0.0
            )
        failed = [m for m in members if m.status == FAILED]
        status = FAILED if failed else (FINISHED if len(finished) == len(members) else PENDING)
        error = f"{failed[0].trial.name}: {failed[0].error}" if failed else ""
        seconds = [m.seconds for m in members if m.seconds is not None and math.isfinite(m.seconds)]
        summary.append(
            TrialResult(
                dataclasses.replace(members[0].trial, name=label),
                status,
                means if finished else None,
                error,
                math.fsum(seconds) if seconds else None,
                reused=all(m.reused for m in members),
                spread=spread if finished else None,
                repeats=len(finished),
            )
        )
    return summary


__all__ = ["FAILED", "FINISHED", "PENDING", "TrialResult", "by_configuration"]
