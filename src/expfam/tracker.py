r"""Trackers: where runs and sweeps are reported besides their run directories (MLflow, ...).

A tracker is a plugin kind ([`expfam_trackers`][expfam.hookspecs.expfam_trackers]). It receives the
events of a run, in this order:

1. [`start`][expfam.tracker.Tracker.start] with a [`RunStart`][expfam.tracker.RunStart]: the run's
   name, its configuration as flat parameters, a one-line model description and tags
   (block set, sweep, phase, stacked group);
2. [`log_row`][expfam.tracker.Tracker.log_row] once per logged chunk, with the row that
   `history.csv` gets;
3. [`log_metrics`][expfam.tracker.Tracker.log_metrics] with the final metrics (`metrics.json`),
   when the run completes;
4. [`log_artifacts`][expfam.tracker.Tracker.log_artifacts] with the run directory's files;
5. [`end`][expfam.tracker.Tracker.end] with a [`RunEnd`][expfam.tracker.RunEnd]: `completed`,
   `diverged` (with the step and the term), `interrupted` or `failed`.

A `start` that comes while another run is open starts a child of it: a sweep starts its own
run, then each trial's, and ends its own last. The run directory is the source of truth: the
experiment machinery ([`expfam.experiment.tracking`][expfam.experiment.tracking]) calls a tracker
only after the files are written, and a tracker that raises is reported once and not called
again. A tracker never writes into the run directory.

A tracker class is registered by name and made with keyword arguments only: `uri` (where to
report, `None`: the tracker's default), `base` (the folder that holds the runs, for a default
store next to them) and `experiment` (a name grouping runs, `None`: the tracker's default).

Examples:
    >>> start = RunStart(name="quick", params={"n_latent": "4"}, tags={"expfam.kind": "run"})
    >>> RunEnd(status=DIVERGED, step=120, term="elbo").status
    'diverged'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

#: The end statuses of a run (those of `run.json`).
COMPLETED = "completed"
DIVERGED = "diverged"
INTERRUPTED = "interrupted"
FAILED = "failed"
END_STATUSES: tuple[str, ...] = (COMPLETED, DIVERGED, INTERRUPTED, FAILED)


@dataclass(frozen=True)
class RunStart:
    """What a tracker hears when a run (or a sweep) starts.

    Attributes:
        name: the run's name (its folder's name; a sweep's title or folder name).
        params: the configuration, one flat key per setting (`n_latent`, `evaluate.batch_size`),
            each value as TOML text (`"4"`, `"'hierarchical'"`, `"true"`).
        description: one line describing the model (or the sweep).
        tags: `expfam.kind` (`run`, `sweep` or `trial`), `expfam.blocks`, and for a sweep's
            trial `expfam.sweep`, `expfam.phase` and `expfam.group` (the stacked group's members).
        run_dir: the run directory (absolute), `None` for a run that writes none; a tracker
            that continues runs uses it as the run's identity, and never writes into it.
        resumed: the run continues an earlier attempt (a resumed run, a sweep run again):
            continue the run tracked for `run_dir` if there is one, rather than start another.
        started: when the run started (UNIX seconds), for a run reported after the fact (a sweep's
            trial); `None`: now.
    """

    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    run_dir: Path | None = None
    resumed: bool = False
    started: float | None = None


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: `status` (one of `END_STATUSES`), and for a diverged run the step and term.

    Attributes:
        status: `completed`, `diverged`, `interrupted` or `failed`.
        step: the steps done (for `diverged`, the step that produced the non-finite value).
        term: the loss term that diverged (`""` otherwise).
        message: the error of a failed or diverged run (`""` otherwise).
        ended: when the run ended (UNIX seconds), for a run reported after the fact; `None`: now.
    """

    status: str
    step: int | None = None
    term: str = ""
    message: str = ""
    ended: float | None = None


@runtime_checkable
class Tracker(Protocol):
    """The events a tracker receives; see the module docstring for their order and nesting.

    A method may raise: the caller reports it once, on one warning line, and stops calling that
    tracker; the run goes on and finishes exactly as without it.
    """

    name: ClassVar[str]

    def start(self, run: RunStart) -> None:
        """A run starts (a child of the run still open, if any)."""

    def log_row(self, step: int, row: Mapping[str, float]) -> None:
        """A logged chunk's history row (`step` is also `row["step"]`)."""

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """The final metrics of the run (`metrics.json`)."""

    def log_artifacts(self, files: Mapping[str, Path]) -> None:
        """The run's files: `{name inside the run directory: path}` (e.g. `{"plots/curves.png": ...}`)."""

    def end(self, end: RunEnd) -> None:
        """The open run ends (the innermost one, when a sweep's trial ends)."""


__all__ = [
    "COMPLETED",
    "DIVERGED",
    "END_STATUSES",
    "FAILED",
    "INTERRUPTED",
    "RunEnd",
    "RunStart",
    "Tracker",
]
