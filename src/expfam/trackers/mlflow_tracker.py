r"""The MLflow tracker: a run as an MLflow run, a sweep as a parent run with one child per trial.

What goes where (docs/tracking.md shows it in the MLflow UI):

- parameters: the configuration, one flat key per setting (`n_latent`, `evaluate.batch_size`), as TOML text;
- metrics `history/<column>`: each `history.csv` column, one point per row at the row's `step`;
- metrics `<name>`: the final metrics of `metrics.json`, at the last step;
- artefacts: the run directory's files (`config.toml`, `history.csv`, `metrics.json`, `plots/*.png`, ...);
- tags: `expfam.kind`, `expfam.blocks`, `expfam.sweep`, `expfam.phase`, `expfam.group`,
  `expfam.run_dir` (the run's identity), and at the end `expfam.status` with `expfam.diverged_step`
  and `expfam.diverged_term`, or `expfam.error`; the model description is the run's note;
- status: `completed` → `FINISHED`, `diverged` and `failed` → `FAILED`, `interrupted` → `KILLED`.

The default store is SQLite, `sqlite:///<folder of the runs>/mlflow.db`, with the artefacts in
`<folder of the runs>/mlartifacts`: next to the runs, never inside a run directory. SQLite is MLflow 3's
own default backend (its file store is on the way out, with a migration tool to SQLite), one file that
`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` opens.

A resumed start finds the run tracked for the same run directory (the tag `expfam.run_dir`) with the
same parameters and continues it: rows up to the last step it holds are not logged again (a resumed
run recomputes them bit for bit), and a run that had finished is left as it was.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from expfam.errors import ConfigurationError
from expfam.tracker import COMPLETED, DIVERGED, INTERRUPTED, RunEnd, RunStart

#: The experiment runs go to when none is named.
DEFAULT_EXPERIMENT = "expfam"
#: The MLflow status of each end status.
MLFLOW_STATUS: dict[str, str] = {COMPLETED: "FINISHED", DIVERGED: "FAILED", INTERRUPTED: "KILLED"}
#: HTTP retries, backoff factor and timeout (seconds) used unless the environment sets them: MLflow's
#: own defaults retry a dead server for minutes, which would hold the run up.
HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_BATCH = 100  # MLflow takes at most 100 parameters per batch


def default_uri(base: Path) -> str:
    """`sqlite:///<base>/mlflow.db`: the store next to the runs in `base`."""
    return f"sqlite:///{(base / 'mlflow.db').resolve()}"


@dataclass
class _Open:
    run_id: str
    logged_to: int  # rows up to this step are in the store already
    frozen: bool  # a finished run found again: left as it was
    step: int = 0


class MlflowTracker:
    """Report runs to MLflow (`expfam train --track mlflow [--tracking-uri URI]`).

    Args:
        uri: an MLflow tracking URI (`http://127.0.0.1:5000`, `sqlite:///path/mlflow.db`, ...);
            `None`: [`default_uri`][expfam.trackers.mlflow_tracker.default_uri] of `base`.
        base: the folder holding the runs (default: the working directory).
        experiment: the MLflow experiment (default `"expfam"`; created when missing).

    Raises:
        ConfigurationError: MLflow is not installed (`pip install 'expfam[mlflow]'`).
    """

    name: ClassVar[str] = "mlflow"
    description: ClassVar[str] = "MLflow runs; a sweep is a parent run with its trials as children"

    def __init__(self, *, uri: str | None = None, base: Path | None = None, experiment: str | None = None) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigurationError(
                "--track mlflow needs MLflow, which is not installed: pip install 'expfam[mlflow]'",
                offending="mlflow",
            )
        self.base = Path(base if base is not None else Path.cwd()).expanduser().resolve()
        self.uri = uri or default_uri(self.base)
        self.experiment = experiment or DEFAULT_EXPERIMENT
        self._client: Any = None
        self._experiment_id = ""
        self._open: list[_Open] = []
        if self.uri.startswith(("http://", "https://")):
            for key, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)

    # ----------------------------------------------------------------- connection
    def _connect(self) -> Any:
        if self._client is None:
            for logger in ("alembic", "mlflow.store.db.utils"):  # the SQLite store's migrations, once
                logging.getLogger(logger).setLevel(logging.WARNING)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                self._experiment_id = client.create_experiment(self.experiment, artifact_location=self._artifacts())
            else:
                self._experiment_id = found.experiment_id
            self._client = client
        return self._client

    def _artifacts(self) -> str | None:
        """Where a new experiment keeps artefacts: beside a SQLite store; a server's own choice otherwise."""
        if self.uri.startswith("sqlite:///"):
            database = Path(self.uri.removeprefix("sqlite:///"))
            return (database.parent / "mlartifacts").resolve().as_uri()
        return None

    def _earlier(self, run: RunStart) -> Any:
        """The run tracked for `run.run_dir` with the same parameters (under the open parent), or `None`."""
        where = str(run.run_dir)
        if run.run_dir is None or "'" in where:
            return None
        query = f"tags.`expfam.run_dir` = '{where}'"
        if self._open:
            query += f" and tags.`mlflow.parentRunId` = '{self._open[-1].run_id}'"
        found = self._connect().search_runs(
            [self._experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=1
        )
        if not found or dict(found[0].data.params) != dict(run.params):
            return None
        return found[0]

    def _last_step(self, run: Any) -> int:
        keys = sorted(key for key in run.data.metrics if key.startswith("history/"))
        if not keys:
            return -1
        return max(point.step for point in self._connect().get_metric_history(run.info.run_id, keys[0]))

    # ----------------------------------------------------------------- events
    def start(self, run: RunStart) -> None:
        """Create the MLflow run (a child of the open one, if any), or continue the earlier one."""
        client = self._connect()
        earlier = self._earlier(run) if run.resumed else None
        if earlier is not None:
            finished = earlier.info.status == "FINISHED"
            if not finished:
                client.update_run(earlier.info.run_id, status="RUNNING")
            self._open.append(_Open(earlier.info.run_id, self._last_step(earlier), finished))
            return
        from mlflow.entities import Param

        tags = {**run.tags, "mlflow.note.content": run.description}
        if run.run_dir is not None:
            tags["expfam.run_dir"] = str(run.run_dir)
        if self._open:
            tags["mlflow.parentRunId"] = self._open[-1].run_id
        start_time = int(run.started * 1000) if run.started is not None else None
        created = client.create_run(self._experiment_id, start_time=start_time, run_name=run.name, tags=tags)
        run_id = created.info.run_id
        self._open.append(_Open(run_id, -1, False))
        params = [Param(key, value[:6000]) for key, value in run.params.items()]
        for first in range(0, len(params), _BATCH):
            client.log_batch(run_id, params=params[first : first + _BATCH])

    def log_row(self, step: int, row: Mapping[str, float]) -> None:
        """The row's columns as `history/<column>` at `step` (not again for a continued run's logged steps)."""
        current = self._open[-1]
        current.step = max(current.step, step)
        if current.frozen or step <= current.logged_to:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"history/{key}", float(value), now, step) for key, value in row.items() if key != "step"]
        self._connect().log_batch(current.run_id, metrics=metrics)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """The final metrics under their own names, at the run's last step."""
        current = self._open[-1]
        if current.frozen:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [
            Metric(key, float(value), now, current.step)
            for key, value in metrics.items()
            if isinstance(value, (int, float))
        ]
        self._connect().log_batch(current.run_id, metrics=points)

    def log_artifacts(self, files: Mapping[str, Path]) -> None:
        """Each file under its name in the run directory (`plots/curves.png` in the folder `plots`)."""
        current = self._open[-1]
        if current.frozen:
            return
        client = self._connect()
        for name, path in files.items():
            folder = name.rpartition("/")[0] or None
            client.log_artifact(current.run_id, str(path), artifact_path=folder)

    def end(self, end: RunEnd) -> None:
        """Tag the end status (and a divergence's step and term), then end the MLflow run."""
        current = self._open.pop()
        if current.frozen:
            return
        client = self._connect()
        client.set_tag(current.run_id, "expfam.status", end.status)
        if end.status == DIVERGED:
            client.set_tag(current.run_id, "expfam.diverged_step", str(end.step))
            client.set_tag(current.run_id, "expfam.diverged_term", end.term)
        if end.message:
            client.set_tag(current.run_id, "expfam.error", end.message[:5000])
        end_time = int(end.ended * 1000) if end.ended is not None else None
        client.set_terminated(current.run_id, status=MLFLOW_STATUS.get(end.status, "FAILED"), end_time=end_time)


__all__ = ["DEFAULT_EXPERIMENT", "HTTP_DEFAULTS", "MLFLOW_STATUS", "MlflowTracker", "default_uri"]
