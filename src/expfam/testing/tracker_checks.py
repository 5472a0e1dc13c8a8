r"""Checks of a tracker plugin (docs/writing-plugins.md, "A tracker").

[`check_tracker`][expfam.testing.tracker_checks.check_tracker] makes a tracker the way `--track NAME`
does (keyword arguments `uri`, `base`, `experiment`) and plays it every event sequence expfam sends
([`expfam.tracker`][expfam.tracker]):

* **a run**: start, history rows, final metrics, artefacts, end `completed`;
* **a resumed run**: the same run directory started again with `resumed=True`, more rows, end;
* **a sweep**: a parent started, two trials started and ended inside it (one `completed`, one
  `diverged` with its step and term), the parent's artefacts and end;
* **the other ends**: `interrupted` and `failed`, and a run that writes no run directory.

It checks that the tracker has a non-empty `name`, implements the
[`Tracker`][expfam.tracker.Tracker] protocol, raises at no event, and leaves the run directories
exactly as they were (no file added, removed or changed: a tracker never writes into one).
It needs neither JAX nor a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from expfam.tracker import COMPLETED, DIVERGED, FAILED, INTERRUPTED, RunEnd, RunStart, Tracker

#: The history rows played to a run (two chunks of 10 steps), then the resumed run's row.
ROWS: tuple[dict[str, float], ...] = (
    {"step": 10, "loss": 3.5, "elbo": -3.25, "nmi": 0.125},
    {"step": 20, "loss": 2.5, "elbo": -2.25, "nmi": 0.25},
)
RESUMED_ROW: dict[str, float] = {"step": 30, "loss": 2.0, "elbo": -1.75, "nmi": 0.375}
METRICS: dict[str, float] = {"nmi": 0.5, "r2": 0.25, "elbo": -1.5}


def _fake_run(folder: Path) -> Path:
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text("[model]\nn_latent = 4\n", encoding="utf-8")
    (folder / "history.csv").write_text("step,loss\n10,3.5\n20,2.5\n", encoding="utf-8")
    (folder / "metrics.json").write_text('{"nmi": 0.5}\n', encoding="utf-8")
    (folder / "plots" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    return folder


def _files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _snapshot(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in _files(folder).items()}


def _start(name: str, run_dir: Path | None, kind: str, *, resumed: bool = False, **tags: str) -> RunStart:
    params = {"n_latent": "4", "learning_rate": "0.003", "block": "'hierarchical'"}
    return RunStart(name, params, f"check_tracker: {name}", {"expfam.kind": kind, **tags}, run_dir, resumed)


def _play_run(tracker: Tracker, run_dir: Path | None, name: str, end: RunEnd) -> None:
    tracker.start(_start(name, run_dir, "run"))
    for row in ROWS:
        tracker.log_row(int(row["step"]), row)
    if end.status == COMPLETED:
        tracker.log_metrics(METRICS)
    if run_dir is not None:
        tracker.log_artifacts(_files(run_dir))
    tracker.end(end)


def check_tracker(make: Callable[..., Any], folder: Path, *, uri: str | None = None) -> dict[str, int]:
    """Play a tracker every event sequence expfam sends; raise `AssertionError` naming what went wrong.

    Args:
        make: the tracker class (or any callable taking `uri`, `base` and `experiment` by keyword).
        folder: an empty scratch folder: the fake run directories are made in it, and it is the
            tracker's `base` (where a default store goes, next to the runs).
        uri: passed to the tracker (`None`: its default store).

    Returns:
        `{"runs": ..., "events": ...}`: how many runs (parents and children) and events were played.

    Examples:
        >>> import tempfile
        >>> class Memory:
        ...     name = "memory"
        ...     def __init__(self, *, uri=None, base=None, experiment=None): self.events = []
        ...     def start(self, run): self.events.append("start")
        ...     def log_row(self, step, row): self.events.append("row")
        ...     def log_metrics(self, metrics): self.events.append("metrics")
        ...     def log_artifacts(self, files): self.events.append("artifacts")
        ...     def end(self, end): self.events.append(end.status)
        >>> check_tracker(Memory, Path(tempfile.mkdtemp()))
        {'runs': 6, 'events': 29}
    """
    label = f"tracker {getattr(make, 'name', make)!r}"
    tracker = make(uri=uri, base=folder, experiment="expfam-check-tracker")
    if not isinstance(getattr(tracker, "name", None), str) or not tracker.name:
        raise AssertionError(f"{label}: has no name; set the class variable `name` (what --track NAME uses)")
    if not isinstance(tracker, Tracker):
        missing = [m for m in ("start", "log_row", "log_metrics", "log_artifacts", "end") if not hasattr(tracker, m)]
        raise AssertionError(f"{label}: does not implement the Tracker protocol; missing {', '.join(missing)}")
    counter = _Counting(tracker)
    run_dir = _fake_run(folder / "runs" / "solo")
    sweep_dir = folder / "runs" / "sweep"
    trials = [_fake_run(sweep_dir / name) for name in ("S1", "S2")]
    (sweep_dir / "report.md").write_text("# Sweep\n", encoding="utf-8")
    before = {path: _snapshot(path) for path in (run_dir, sweep_dir)}
    sequences: list[tuple[str, Callable[[], None]]] = [
        ("a run", lambda: _play_run(counter, run_dir, "solo", RunEnd(INTERRUPTED, step=20))),
        ("a resumed run", lambda: _resume(counter, run_dir)),
        ("a sweep", lambda: _sweep(counter, sweep_dir, trials)),
        ("a failed run", lambda: _play_run(counter, None, "nowhere", RunEnd(FAILED, message="RuntimeError: boom"))),
    ]
    for what, play in sequences:
        try:
            play()
        except Exception as error:
            raise AssertionError(f"{label}: raised during {what} at event {counter.last}: {error!r}") from error
    for path, snapshot in before.items():
        after = _snapshot(path)
        if after != snapshot:
            changed = sorted(set(after) ^ set(snapshot) | {k for k in after if snapshot.get(k) != after[k]})
            raise AssertionError(f"{label}: changed the run directory {path}: {', '.join(changed)}; write elsewhere")
    return {"runs": counter.runs, "events": counter.events}


def _resume(tracker: Tracker, run_dir: Path) -> None:
    tracker.start(_start("solo", run_dir, "run", resumed=True))
    for row in (*ROWS, RESUMED_ROW):  # a resumed run logs its rows again from its checkpoint
        tracker.log_row(int(row["step"]), row)
    tracker.log_metrics(METRICS)
    tracker.log_artifacts(_files(run_dir))
    tracker.end(RunEnd(COMPLETED, step=30))


def _sweep(tracker: Tracker, sweep_dir: Path, trials: list[Path]) -> None:
    tracker.start(_start("sweep", sweep_dir, "sweep", resumed=True, **{"expfam.sweep": "check"}))
    ends = [RunEnd(COMPLETED, step=20), RunEnd(DIVERGED, step=15, term="elbo", message="diverged")]
    for trial_dir, end in zip(trials, ends, strict=True):
        tags = {"expfam.sweep": "check", "expfam.phase": "P", "expfam.group": "S1+S2"}
        tracker.start(_start(trial_dir.name, trial_dir, "trial", resumed=True, **tags))
        for row in ROWS[: 2 if end.status == COMPLETED else 1]:
            tracker.log_row(int(row["step"]), row)
        if end.status == COMPLETED:
            tracker.log_metrics(METRICS)
        tracker.log_artifacts(_files(trial_dir))
        tracker.end(end)
    tracker.log_artifacts({"report.md": sweep_dir / "report.md"})
    tracker.end(RunEnd(COMPLETED, step=2))


class _Counting:
    """Passes events on, counting runs and events and remembering the last (for the messages)."""

    name: ClassVar[str] = "counting"

    def __init__(self, tracker: Tracker) -> None:
        self.tracker, self.runs, self.events, self.last = tracker, 0, 0, ""

    def _note(self, event: str) -> None:
        self.events += 1
        self.last = event

    def start(self, run: RunStart) -> None:
        self._note(f"start({run.name})")
        self.runs += 1
        self.tracker.start(run)

    def log_row(self, step: int, row: Any) -> None:
        self._note(f"log_row({step})")
        self.tracker.log_row(step, row)

    def log_metrics(self, metrics: Any) -> None:
        self._note("log_metrics")
        self.tracker.log_metrics(metrics)

    def log_artifacts(self, files: Any) -> None:
        self._note("log_artifacts")
        self.tracker.log_artifacts(files)

    def end(self, end: RunEnd) -> None:
        self._note(f"end({end.status})")
        self.tracker.end(end)


__all__ = ["METRICS", "RESUMED_ROW", "ROWS", "check_tracker"]
