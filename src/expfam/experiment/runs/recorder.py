r"""The one writer of run directories: what a run writes while it trains, when it ends, and a sweep trial's record.

[`RunRecorder`][expfam.experiment.runs.recorder.RunRecorder] is used by a solo run
([`expfam.experiment.runs.solo`][expfam.experiment.runs.solo]) and by each trial of a stacked group
([`expfam.experiment.runs.group`][expfam.experiment.runs.group]), so their run directories, histories and
metrics are made by the same code. [`write_start`][expfam.experiment.runs.recorder.write_start] writes
`config.toml` and `model.json` before training; [`begin_trial`][expfam.experiment.runs.recorder.begin_trial],
[`record_finished_trial`][expfam.experiment.runs.recorder.record_finished_trial] and
[`record_failed_trial`][expfam.experiment.runs.recorder.record_failed_trial] are what a sweep
([`expfam.experiment.sweeps.run`][expfam.experiment.sweeps.run]) writes into a trial's folder around its runner.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import __version__ as expfam_version
from expfam import interrupts
from expfam.errors import RunWriteError, TrainingDivergedError
from expfam.experiment.config import RunConfig
from expfam.experiment.evaluation import evaluate, quick_metrics
from expfam.experiment.prepare import PreparedRun, spec_record
from expfam.experiment.runs.atomic import RunDirectoryError, atomic_write_text
from expfam.experiment.runs.files import (
    save_params,
    write_config,
    write_history,
    write_metrics,
    write_model_spec,
)
from expfam.experiment.runs.health import elbo_warning
from expfam.experiment.runs.layout import (
    COMPLETED,
    CONFIG_FILE,
    DIVERGED,
    ERROR_FILE,
    FAILED,
    INTERRUPTED,
    METRICS_FILE,
    PARAMS_FILE,
    RUNNING,
    is_finished,
    write_info,
)
from expfam.experiment.tracking import Tracking, config_params, run_files
from expfam.experiment.train.cluster_start import KMEANS_N_INIT
from expfam.experiment.train.loop import TrainResult
from expfam.experiment.train.step import TrainState
from expfam.experiment.train.streams import run_keys
from expfam.experiment.usage import usage_metrics
from expfam.model import Params
from expfam.tracker import RunEnd, RunStart

#: `progress(step, n_steps, row)` after every logged chunk; `row` is the history row.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]


def elbo_columns(piece: Mapping[str, np.ndarray], estimator: str) -> dict[str, np.ndarray]:
    """The chunk's term values under their history columns: the ELBO estimator's value as `elbo`.

    Only a term that is in the loss is renamed, and never over a term that is itself called
    `elbo`; every other column is the name of the term whose value it holds.
    """
    if estimator == "elbo" or estimator not in piece or "elbo" in piece:
        return dict(piece)
    return {("elbo" if name == estimator else name): value for name, value in piece.items()}


def history_row(step: int, piece: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The history row of a chunk: `step`, then the chunk mean of `loss`, `elbo` and every other term by name."""
    first = [name for name in ("loss", "elbo") if name in piece]
    names = first + sorted(name for name in piece if name not in first)
    return {"step": step, **{name: float(np.mean(piece[name])) for name in names}}


def model_file(prepared: PreparedRun) -> dict[str, Any]:
    """`model.json`: the run's model spec ([`spec_record`][expfam.experiment.prepare.spec_record]) and the
    data's image shape, trial count and labels, what [`load_run`][expfam.experiment.runs.trained.load_run]
    rebuilds the model from without the data."""
    return {
        **spec_record(prepared.spec),
        "image_shape": list(prepared.split.image_shape),
        "n_trials": prepared.split.n_trials,
        "has_labels": prepared.split.has_labels,
    }


def write_start(run_dir: Path, prepared: PreparedRun) -> None:
    """Write `config.toml` and `model.json` of a run about to train (every check has passed)."""
    write_config(run_dir, prepared.config)
    write_model_spec(run_dir, model_file(prepared))


def run_info(prepared: PreparedRun, status: str, **extra: Any) -> dict[str, Any]:
    """`run.json`'s content: `status`, the data and model, the versions and backend, and `extra`."""
    return {
        "status": status,
        "n_steps": prepared.config.train.n_steps,
        "data": prepared.split.describe(),
        "model": {
            "observable": prepared.model.observable.describe(),
            "blocks": list(prepared.model.block_names),
            "n_latent": prepared.config.model.n_latent,
            "n_clusters": prepared.model.n_clusters,
        },
        "expfam_version": expfam_version,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "x64": jax.dtypes.canonicalize_dtype(np.float64) == np.float64,
        **extra,
    }


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While training, SIGTERM raises `KeyboardInterrupt` like Ctrl-C (main thread only).

    Not under the command line, whose handlers ([`expfam.interrupts`][expfam.interrupts]) stay.
    """
    if interrupts.installed() or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunRecorder:
    """What one run writes while it trains and when it ends; shared by solo and stacked training.

    A solo run ([`train_run`][expfam.experiment.runs.solo.train_run],
    [`resume_run`][expfam.experiment.runs.solo.resume_run]) and each trial of a stacked group
    ([`expfam.experiment.sweeps.plan`][expfam.experiment.sweeps.plan]) call the same methods, so their run
    directories, histories and metrics are made by the same code.
    """

    def __init__(
        self,
        prepared: PreparedRun,
        run_dir: Path | None,
        rows: list[dict[str, float]],
        *,
        progress: ProgressCallback | None = None,
        log: Callable[[str], None] | None = None,
        plots: bool = True,
        info: Mapping[str, Any] | None = None,
        tracking: Tracking | None = None,
        resumed: bool = False,
    ) -> None:
        self.prepared, self.run_dir, self.rows = prepared, run_dir, rows
        self.tracking, self.resumed = tracking or Tracking([]), resumed
        self.progress, self.plots = progress, plots
        self.say: Callable[[str], None] = log or (lambda text: None)
        self.keys = run_keys(prepared.config.train.seed)
        self.extra_info = dict(info or {})
        self.started = time.perf_counter()
        self.elbo_warned = False

    def info(self, status: str, **extra: Any) -> dict[str, Any]:
        """`run.json`'s content for `status`."""
        return run_info(self.prepared, status, **self.extra_info, **extra)

    def begin(self) -> Params:
        """Log the data and the model, mark the run `running`; returns the initial parameters of the seed."""
        config, split, model = self.prepared.config, self.prepared.split, self.prepared.model
        self.say(f"data: {split.describe()}")
        self.say(
            f"model: {model.observable.describe()} ↔ blocks {'+'.join(model.block_names)}, "
            f"n_latent={config.model.n_latent}, n_clusters={model.n_clusters}"
        )
        if not split.has_labels:
            self.say(
                "no labels: NMI, purity and accuracy need labels; reporting ELBO, IWAE, R², recon and active clusters"
            )
        if self.run_dir is not None:
            write_info(self.run_dir, self.info(RUNNING))
            self.say(f"run directory: {self.run_dir}")
        self.tracking.start(run_start(self.prepared, self.run_dir, resumed=self.resumed))
        self.say(f"training {config.train.n_steps} steps (the first chunk includes compilation)")
        self.started = time.perf_counter()
        if config.train.cluster_init == "kmeans":
            self.say(f"clusters start from KMeans ({KMEANS_N_INIT} restarts) on the training rows")
        elif config.train.cluster_init == "spectral":
            self.say("clusters start from spectral clustering of the training rows")
        return model.init(self.keys["init"], jnp.asarray(split.x_train))

    def callback(self, step: int, current: Params, piece: Mapping[str, np.ndarray]) -> None:
        """After a chunk: append the history row (chunk means and quick metrics), write it, report progress."""
        config, split = self.prepared.config, self.prepared.split
        # the ELBO estimator's value is the ELBO whichever term estimates it
        piece = elbo_columns(piece, config.train.elbo_estimator)
        row = history_row(step, piece)
        row.update(quick_metrics(self.prepared.model, current, split.x_test, split.y_test, self.keys["progress"]))
        row.update(usage_metrics(self.prepared.model, current, split.x_test))
        self.rows.append(row)
        warning = elbo_warning(
            row.get("elbo", math.nan),
            data_dim=int(np.prod(split.x_train.shape[1:])),
            n_trials=int(split.n_trials),
            step=step,
            learning_rate=config.train.learning_rate,
        )
        if warning is not None and not self.elbo_warned:  # once per run
            self.elbo_warned = True
            self.say(f"warning: {warning}")
        if self.run_dir is not None:
            write_history(self.run_dir, self.rows)
        self.tracking.log_row(row)
        if self.progress is not None:
            self.progress(step, config.train.n_steps, row)

    def checkpoint(self, state: TrainState) -> None:
        """Write `state` as the run's checkpoint."""
        if self.run_dir is not None:
            from expfam.experiment.runs.checkpoints import save_checkpoint

            save_checkpoint(self.run_dir, state)

    def interrupted(self) -> None:
        """Mark the run `interrupted` (its checkpoint is written by the trainer; the CLI says what was kept)."""
        if self.run_dir is not None:
            done = self.rows[-1]["step"] if self.rows else 0
            _mark(self.run_dir, self.info(INTERRUPTED, steps=done))
        self.tracking.end(RunEnd(INTERRUPTED, step=int(self.rows[-1]["step"]) if self.rows else 0))

    def failed(self, error: str) -> None:
        """Mark the run `failed` with `error` (a write failure or an unexpected error), if the disk lets us."""
        if self.run_dir is not None:
            _mark(self.run_dir, self.info(FAILED, error=error))
        self.tracking.end(RunEnd(FAILED, message=error))

    def diverged(self, error: TrainingDivergedError, params: Params) -> None:
        """Save the last finite parameters and the history, mark the run `diverged` with its step and term.

        Parameters that are not finite (a learning rate so large that a finite gradient made
        them infinite) are not saved: `params.npz` is then absent, as the error message says.
        """
        if self.run_dir is not None:
            kept = error.last_params  # None: the trainer found no finite parameters to keep
            if kept is not None:
                save_params(self.run_dir, kept)
            else:
                (self.run_dir / PARAMS_FILE).unlink(missing_ok=True)
            write_history(self.run_dir, self.rows)
            # steps 0..step-1 were applied; step `error.step` was not (the parameters kept are those before it)
            write_info(
                self.run_dir,
                self.info(
                    DIVERGED,
                    steps=error.step,
                    diverged={"step": error.step, "term": error.term, "message": str(error)},
                    train_seconds=time.perf_counter() - self.started,
                ),
            )
            if kept is not None:
                self.say(
                    f"saved the last finite parameters (after {error.step} steps) and the history to {self.run_dir}"
                )
            else:
                self.say(f"saved the history to {self.run_dir}; no finite parameters to save")
            self.tracking.log_artifacts(run_files(self.run_dir))
        self.tracking.end(RunEnd(DIVERGED, step=error.step, term=error.term, message=str(error)))

    def finish(self, result: TrainResult, train_seconds: float) -> dict[str, float]:
        """Evaluate on the test split and write the parameters, metrics, history, plots and `completed`."""
        split, model = self.prepared.split, self.prepared.model
        interrupts.check()
        self.say("evaluating on the " + ("validation and test splits" if self.prepared.held_out else "test split"))
        metrics = evaluate_prepared(self.prepared, result.params)
        interrupts.check()
        if self.run_dir is not None:
            save_params(self.run_dir, result.params)
            write_metrics(self.run_dir, metrics)
            write_history(self.run_dir, self.rows)
            if self.plots:
                from expfam.experiment.runs.plots import save_run_plots

                self.say("writing plots")
                save_run_plots(
                    self.run_dir,
                    model,
                    result.params,
                    split.x_test,
                    split.image_shape,
                    self.rows,
                    key=self.keys["plots"],
                    value_range=(0.0, float(split.n_trials)),
                )
            interrupts.check()
            write_info(  # last: only now does the run read as finished (runs.is_finished)
                self.run_dir,
                self.info(
                    COMPLETED,
                    steps=result.steps,
                    train_seconds=train_seconds,
                    total_seconds=time.perf_counter() - self.started,
                ),
            )
        self.tracking.log_metrics(metrics)  # after the files: a tracker cannot change them
        if self.run_dir is not None:
            self.tracking.log_artifacts(run_files(self.run_dir))
        self.tracking.end(RunEnd(COMPLETED, step=result.steps))
        return metrics


def _mark(run_dir: Path, info: Mapping[str, Any]) -> None:
    """Write `run.json` if the disk lets us (after a write failure it may not; the run then reads `running`)."""
    with contextlib.suppress(RunWriteError, OSError):
        write_info(run_dir, info)


def run_start(prepared: PreparedRun, run_dir: Path | None, *, resumed: bool = False, **tags: str) -> RunStart:
    """What a tracker hears when the run starts: its configuration, model, block set and `tags`."""
    model, config = prepared.model, prepared.config
    description = (
        f"{model.observable.describe()} ↔ blocks {'+'.join(model.block_names)}, n_latent={config.model.n_latent}, "
        f"n_clusters={model.n_clusters}; data: {prepared.split.describe()}"
    )
    where = run_dir.resolve() if run_dir is not None else None
    base = {"expfam.kind": "run", "expfam.blocks": "+".join(model.block_names)}
    return RunStart(
        name=where.name if where is not None else "run",
        params=config_params(config),
        description=description,
        tags={**base, **tags},
        run_dir=where,
        resumed=resumed,
    )


def stopped_run_text(run_dir: Path) -> str:
    """What a stopped run kept and how to continue it (one sentence, no trailing period)."""
    from expfam.experiment.runs.checkpoints import checkpoint_step

    with contextlib.suppress(RunDirectoryError):
        step = checkpoint_step(run_dir)
        if step is not None:
            return (
                f"kept {run_dir}/checkpoint.npz (step {step}) and history.csv; continue with "
                f"`expfam train --resume {run_dir}`"
            )
    return f"no checkpoint was written yet; train it again with `--out {run_dir} --overwrite`"


def evaluate_prepared(prepared: PreparedRun, params: Params) -> dict[str, float]:
    """The run's metrics: on its test split, or on its validation split plus `test_*` on the test split.

    With a validation split the metrics that select a configuration are the validation ones;
    the test split's are reported beside them under `test_<name>` and used for nothing else.
    """
    keys = run_keys(prepared.config.train.seed)
    split, config = prepared.split, prepared.config.evaluate
    metrics = evaluate(prepared.model, params, split.x_test, split.y_test, key=keys["evaluate"], config=config)
    if prepared.held_out is not None:
        test = prepared.held_out
        scores = evaluate(prepared.model, params, test.x_test, test.y_test, key=keys["evaluate"], config=config)
        metrics.update({f"test_{name}": value for name, value in scores.items()})
    return metrics


# ----------------------------------------------------------------- a sweep trial's folder
def begin_trial(run_dir: Path) -> Path:
    """Create a sweep trial's folder and remove the `error.txt` of an earlier failed attempt."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    return run_dir


def record_finished_trial(run_dir: Path, config: RunConfig, metrics: Mapping[str, float], seconds: float) -> None:
    """Complete the folder of a trial whose runner returned `metrics`.

    A runner that writes no run directory of its own (a custom sweep runner) leaves the
    folder without `config.toml`, `metrics.json` or a finished `run.json`: the missing ones are
    written from `config`, `metrics` and `seconds`; a run directory the runner wrote is left as it is.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        write_config(run_dir, config)
    if not (run_dir / METRICS_FILE).is_file():
        write_metrics(run_dir, metrics)
    if not is_finished(run_dir):  # a runner that writes no run.json: its returned metrics finish it
        write_info(run_dir, {"status": COMPLETED, "total_seconds": seconds})


def record_failed_trial(run_dir: Path, error: str, trace: str) -> None:
    """Write `error.txt` into the folder of a trial that raised: the error line, then its traceback."""
    atomic_write_text(run_dir / ERROR_FILE, f"{error}\n\n{trace}")


__all__ = [
    "ProgressCallback",
    "RunRecorder",
    "begin_trial",
    "elbo_columns",
    "evaluate_prepared",
    "history_row",
    "model_file",
    "record_failed_trial",
    "record_finished_trial",
    "run_info",
    "run_start",
    "sigterm_as_interrupt",
    "stopped_run_text",
    "write_start",
]
