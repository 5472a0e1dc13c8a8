r"""The ``jsonl`` tracker: every event of a run, one JSON object per line, appended to a file.

``--track jsonl --tracking-uri events.jsonl`` (default: ``events.jsonl`` next to the runs).
Each line is ``{"event": ..., ...}``: ``start`` with the run's name, tags and whether it
was resumed; ``log_row`` with the step and the row; ``log_metrics``; ``log_artifacts``
with the files' names; ``end`` with the status, step and term. It never writes into a run
directory, and it appends a whole line per event, so an interrupted run leaves a readable file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from expfam.tracker import RunEnd, RunStart


class JsonLinesTracker:
    """Append each event to the file ``uri`` (default ``<base>/events.jsonl``)."""

    name: ClassVar[str] = "jsonl"
    description: ClassVar[str] = "every run event as a line of JSON in a file"

    def __init__(self, *, uri: str | None = None, base: Path | None = None, experiment: str | None = None) -> None:
        self.path = Path(uri) if uri else Path(base or ".") / "events.jsonl"
        self.experiment = experiment or "default"

    def _write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "experiment": self.experiment, **fields}, sort_keys=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def start(self, run: RunStart) -> None:
        """``{"event": "start", "name", "tags", "resumed", "run_dir"}``."""
        where = str(run.run_dir) if run.run_dir is not None else None
        self._write("start", name=run.name, tags=dict(run.tags), resumed=run.resumed, run_dir=where)

    def log_row(self, step: int, row: Mapping[str, float]) -> None:
        """``{"event": "log_row", "step", "row"}``."""
        self._write("log_row", step=step, row=dict(row))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """``{"event": "log_metrics", "metrics"}``."""
        self._write("log_metrics", metrics=dict(metrics))

    def log_artifacts(self, files: Mapping[str, Path]) -> None:
        """``{"event": "log_artifacts", "files": [names]}``."""
        self._write("log_artifacts", files=sorted(files))

    def end(self, end: RunEnd) -> None:
        """``{"event": "end", "status", "step", "term"}``."""
        self._write("end", status=end.status, step=end.step, term=end.term)
