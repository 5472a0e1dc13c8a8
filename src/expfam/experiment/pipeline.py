r"""The public functions behind the `expfam` command: train a run, re-evaluate it, summarise it.

[`train_run`][expfam.experiment.pipeline.train_run] checks everything that can be checked before any training
(configuration ranges, every registry name, the data files, the data against
the observable family's support, the run directory), then initialises the
parameters from the seed, trains, evaluates on the test split and writes the
run directory ([`expfam.experiment.runs`][expfam.experiment.runs]). The same configuration and seed give the
same numbers.

Examples:
    Not run as a doctest: it trains and evaluates a model and writes `runs/quick`
    (about a minute on two cores); `tests/expfam/test_pipeline.py` runs the same path.

    >>> from expfam.experiment.config import RunConfig, config_from_mapping
    >>> config = config_from_mapping({"train": {"n_steps": 200}})          # doctest: +SKIP
    >>> metrics = train_run(config, Path("runs/quick"))                     # doctest: +SKIP
    >>> print(format_summary([summary_row(config, metrics, run="quick")]))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import __version__ as expfam_version
from expfam import interrupts
from expfam.builder import build_model, resolve_blocks
from expfam.data import DataSplit, check_data_for_family, load_dataset
from expfam.errors import ConfigurationError, ExpfamError, RunFailedError, RunWriteError, TrainingDivergedError
from expfam.experiment.checks import (
    check_cluster_init,
    check_memory,
    check_observable_shape,
    check_run_matches,
    parameter_shapes,
    parse_blocks,
)
from expfam.experiment.config import RunConfig, validate_config, warn_about_config
from expfam.experiment.evaluation import evaluate, quick_metrics
from expfam.experiment.run_lock import require_unlocked, run_lock, writable_run_dir
from expfam.experiment.runs import (
    COMPLETED,
    DIVERGED,
    FAILED,
    INTERRUPTED,
    PARAMS_FILE,
    RUNNING,
    RunDirectoryError,
    read_config,
    read_history,
    read_info,
    read_run,
    require_finished,
    run_status,
    save_params,
    write_config,
    write_history,
    write_info,
    write_metrics,
    write_model_spec,
)
from expfam.experiment.summary import (
    SUMMARY_COLUMNS,
    collapse_warning,
    compact_float,
    elbo_warning,
    format_summary,
    summary_row,
)
from expfam.experiment.train.cluster_start import KMEANS_N_INIT
from expfam.experiment.train.devices import check_batch_split, check_device_count
from expfam.experiment.train.loop import TrainResult, train
from expfam.experiment.train.optimizer import check_block_schedule, make_optimizer
from expfam.experiment.train.step import TrainState, loss_weights
from expfam.experiment.train.streams import run_keys
from expfam.experiment.usage import usage_metrics
from expfam.model import Harmonium, Params
from expfam.objective import build_objectives
from expfam.plugins import Registry, get_registry

#: `progress(step, n_steps, row)` after every logged chunk; `row` is the history row.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]


@dataclass(frozen=True)
class PreparedRun:
    """A checked configuration with its data and model, ready to train.

    With `[data] validation_fraction > 0`, `split`'s test part is the validation rows
    (what progress and the run's metrics use, for model selection) and `held_out` the
    test split, scored once at the end (`test_*` metrics).
    """

    config: RunConfig
    split: DataSplit
    model: Harmonium
    held_out: DataSplit | None = None


def observable_options(config: RunConfig, registry: Registry) -> dict[str, Any]:
    """Options of the observable family: `n_trials` from `[model]` where the family has it, then
    `[model.observable_options]`, each checked against the family's fields.

    Raises:
        ConfigurationError: an option the family does not have (listing the ones it has), or
            `n_trials` given in both places.
    """
    cls = registry.family(config.model.observable)
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    options = {name: getattr(config.model, name) for name in sorted(names - {"size"}) if hasattr(config.model, name)}
    extra = config.model.observable_options.to_dict()
    unknown = sorted(set(extra) - (names - {"size"}))
    if unknown:
        accepted = ", ".join(sorted(names - {"size"})) or "no options"
        raise ConfigurationError(
            f"[model.observable_options]: family {config.model.observable!r} has no option(s) {', '.join(unknown)}; "
            f"it accepts {accepted}",
            offending=unknown,
        )
    clash = sorted(set(extra) & set(options))
    if clash:
        raise ConfigurationError(
            f"[model.observable_options] sets {', '.join(clash)}, which [model] sets already; set it in [model] only",
            offending=clash,
        )
    return {**options, **extra}


def check_loss_weights(config: RunConfig, registry: Registry) -> None:
    r"""Every name of `[train.loss_weights]` is a registered loss term (else the error lists them),
    `elbo_estimator` names a loss term that estimates the ELBO (its class sets `estimates_elbo`), and
    every table of `[train.loss_options]` names a term of the loss and only options that term has.

    Raises:
        UnknownNameError: a name that is not a registered loss term.
        ConfigurationError: an `elbo_estimator` that does not estimate the ELBO (e.g. `conjugation`),
            or options for a term the loss does not use or that the term does not have.
    """
    for name in config.train.loss_weights:
        registry.objective(name)
    estimator = config.train.elbo_estimator
    if not registry.objective(estimator).estimates_elbo:
        estimators = [name for name in registry.names("objectives") if registry.objective(name).estimates_elbo]
        raise ConfigurationError(
            f"--elbo-estimator {estimator!r} is a loss term that does not estimate the ELBO; choose one of "
            f"{', '.join(estimators)} (other terms are added with --loss NAME=WEIGHT)",
            offending=estimator,
        )
    build_objectives(list(loss_weights(config.train)), config.train.loss_options, registry=registry)


def _resolved_data_path(config: RunConfig) -> RunConfig:
    """The configuration with `[data] data` made absolute, so the run can be re-evaluated from anywhere."""
    if not config.data.data:
        return config
    absolute = str(Path(config.data.data).expanduser().resolve())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, data=absolute))


def prepare_run(config: RunConfig, *, registry: Registry | None = None, devices: int | None = None) -> PreparedRun:
    """Check a configuration and load what it names, before any training and before any file is written.

    In order: value ranges; the observable family, the blocks, the loss terms (the ELBO
    estimator by its role) and the dataset in the registry; the device count and the batch
    size's split over `devices`; the data files; the model's shapes; the data against the
    observable family's support; the memory; the cluster start (its model and its row count).

    Raises:
        ConfigurationError, UnknownNameError, DataError, SupportError: naming the problem.
    """
    registry = registry or get_registry()
    validate_config(config)
    config = _resolved_data_path(config)
    options = observable_options(config, registry)
    blocks = resolve_blocks(parse_blocks(config.model.block), registry)
    check_loss_weights(config, registry)
    check_block_schedule(config.train, blocks)
    check_device_count(devices)
    check_batch_split(config.train, devices)
    registry.dataset(config.data.dataset)
    split = load_dataset(
        config.data.dataset,
        path=config.data.data or None,
        n_trials=config.model.n_trials,
        seed=config.train.seed,
        test_fraction=config.data.test_fraction,
        registry=registry,
        options=config.data.options.to_dict(),
    )
    held_out = None
    if config.data.validation_fraction > 0:
        held_out = split
        split = split.validation_split(config.data.validation_fraction, seed=config.train.seed)
    model = build_model(
        observable=config.model.observable,
        observable_options=options,
        data_dim=split.n_features,
        n_latent=config.model.n_latent,
        n_clusters=config.model.n_clusters,
        blocks=list(blocks),
        block_options=config.model.block_options.to_dict(),
        registry=registry,
    )
    check_observable_shape(config, model, split.n_features, registry)
    check_data_for_family(split, model.observable)
    check_memory(config, split.n_features, parameter_shapes=parameter_shapes(model))
    check_cluster_init(config, model, int(split.x_train.shape[0]))
    return PreparedRun(config=config, split=split, model=model, held_out=held_out)


def elbo_columns(piece: Mapping[str, np.ndarray], estimator: str) -> dict[str, np.ndarray]:
    """The chunk's term values under their history columns: the ELBO estimator's value as `elbo`.

    Only a term that is in the loss is renamed, and never over a term that is itself called
    `elbo`; every other column is the name of the term whose value it holds.
    """
    if estimator == "elbo" or estimator not in piece or "elbo" in piece:
        return dict(piece)
    return {("elbo" if name == estimator else name): value for name, value in piece.items()}


def _history_row(step: int, piece: Mapping[str, np.ndarray]) -> dict[str, float]:
    first = [name for name in ("loss", "elbo") if name in piece]
    names = first + sorted(name for name in piece if name not in first)
    return {"step": step, **{name: float(np.mean(piece[name])) for name in names}}


def model_spec(prepared: PreparedRun, registry: Registry) -> dict[str, Any]:
    """What [`expfam.load_run`][expfam.experiment.trained.load_run] rebuilds the model from, without the data (`model.json`)."""
    config = prepared.config
    return {
        "observable": config.model.observable,
        "observable_options": observable_options(config, registry),
        "latent": "bernoulli",
        "data_dim": prepared.split.n_features,
        "n_latent": config.model.n_latent,
        "n_clusters": config.model.n_clusters,
        "blocks": list(prepared.model.block_names),
        "block_options": config.model.block_options.to_dict(),
        "image_shape": list(prepared.split.image_shape),
        "n_trials": prepared.split.n_trials,
        "has_labels": prepared.split.has_labels,
    }


def _info(prepared: PreparedRun, status: str, **extra: Any) -> dict[str, Any]:
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


def train_run(
    config: RunConfig,
    out: str | Path | None,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    plots: bool = True,
    registry: Registry | None = None,
    devices: int | None = None,
) -> dict[str, float]:
    """Train one run from its configuration and write its run directory.

    Args:
        config: the whole run configuration.
        out: the run directory (`None`: train and evaluate, write nothing).
        overwrite: replace the run files of an existing non-empty `out`.
        progress: called after every logged chunk with `(step, n_steps, row)`;
            `row` holds the chunk means of the loss terms and the test NMI and R².
        log: called with one line of text at each stage (data, model, evaluation, ...).
        plots: write the four PNG plots into `out`.
        registry: where names are looked up (default: the installed plugins).
        devices: split each training batch over this many devices (data parallel).

    Returns:
        The test-split metrics of [`expfam.experiment.evaluation.evaluate`][expfam.experiment.evaluation.evaluate].

    Raises:
        ExpfamError: a bad configuration, name, data file, support violation or
            run directory, all before training starts.
        TrainingDivergedError: after saving the last finite parameters and the
            history into `out`.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after writing a checkpoint and marking
            the run `interrupted` (continue it with [`resume_run`][expfam.experiment.pipeline.resume_run]).
    """
    registry = registry or get_registry()
    prepared = prepare_run(config, registry=registry, devices=devices)
    if out is None:
        warn_about_config(prepared.config)  # every check passed: the run will train
        return _train_and_write(
            prepared, None, None, [], progress=progress, log=log, plots=plots, registry=registry, devices=devices
        )
    interrupts.hold(lambda: stopped_run_text(Path(out)))  # from here on, a signal stops at a safe point
    with writable_run_dir(out, overwrite) as run_dir:  # every check done: only now is the folder touched
        write_config(run_dir, prepared.config)
        write_model_spec(run_dir, model_spec(prepared, registry))
        warn_about_config(prepared.config)  # every check passed: the run will train
        return _train_and_write(
            prepared, run_dir, None, [], progress=progress, log=log, plots=plots, registry=registry, devices=devices
        )


def resume_run(
    run_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    plots: bool = True,
    registry: Registry | None = None,
    devices: int | None = None,
) -> dict[str, float]:
    """Continue an interrupted run from its last checkpoint; ends with the numbers of an uninterrupted run.

    The run's `config.toml` is used as it is; the data order and every random key
    are functions of (seed, step) ([`expfam.experiment.train.streams`][expfam.experiment.train.streams]), and the
    checkpoint holds the parameters, optimiser state, step and keys.

    Every check (configuration, data, devices, the checkpoint's step, keys and finite
    parameters, [`verify_checkpoint`][expfam.experiment.checkpoints.verify_checkpoint]) runs under the run's
    lock and before `run.json` changes; a refused resume leaves the folder as it was.

    Raises:
        RunDirectoryError: `run_dir` is not a run, has no checkpoint or a damaged one, has
            completed, or another process writes it.
    """
    from expfam.experiment.checkpoints import load_checkpoint, verify_checkpoint

    registry = registry or get_registry()
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    with run_lock(run_dir):
        status = run_status(run_dir)
        if status == COMPLETED:
            raise RunDirectoryError(
                f"run {str(run_dir)!r} has completed; there is nothing to resume (train a new run with --out)",
                offending=str(run_dir),
            )
        prepared = prepare_run(config, registry=registry, devices=devices)
        state = load_checkpoint(run_dir, make_optimizer(prepared.config.train))
        history = read_history(run_dir)
        verify_checkpoint(run_dir, state, prepared.config.train, history)
        check_run_matches(run_dir, prepared.config, state.params, prepared.model, registry, source="checkpoint.npz")
        step = int(state.step)
        rows = [row for row in history if row["step"] <= step]
        say = log or (lambda text: None)
        if status == DIVERGED:
            diverged = read_info(run_dir).get("diverged")
            at = diverged.get("step") if isinstance(diverged, dict) else None
            say(
                f"resuming diverged run {run_dir} from its last finite checkpoint (step {step})"
                + (f"; it diverged at step {at}: change no setting and it diverges there again" if at else "")
            )
        else:
            say(f"resuming {run_dir} from step {step}")
        return _train_and_write(
            prepared, run_dir, state, rows, progress=progress, log=log, plots=plots, registry=registry, devices=devices
        )


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

    A solo run ([`train_run`][expfam.experiment.pipeline.train_run],
    [`resume_run`][expfam.experiment.pipeline.resume_run]) and each trial of a stacked group
    ([`expfam.experiment.stacking`][expfam.experiment.stacking]) call the same methods, so their run
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
    ) -> None:
        self.prepared, self.run_dir, self.rows = prepared, run_dir, rows
        self.progress, self.plots = progress, plots
        self.say: Callable[[str], None] = log or (lambda text: None)
        self.keys = run_keys(prepared.config.train.seed)
        self.extra_info = dict(info or {})
        self.started = time.perf_counter()
        self.elbo_warned = False

    def info(self, status: str, **extra: Any) -> dict[str, Any]:
        """`run.json`'s content for `status`."""
        return _info(self.prepared, status, **self.extra_info, **extra)

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
        self.say(f"training {config.train.n_steps} steps (the first chunk includes compilation)")
        self.started = time.perf_counter()
        if config.train.cluster_init == "kmeans":
            self.say(f"clusters start from KMeans ({KMEANS_N_INIT} restarts) on the training rows")
        return model.init(self.keys["init"], jnp.asarray(split.x_train))

    def callback(self, step: int, current: Params, piece: Mapping[str, np.ndarray]) -> None:
        """After a chunk: append the history row (chunk means and quick metrics), write it, report progress."""
        config, split = self.prepared.config, self.prepared.split
        # the ELBO estimator's value is the ELBO whichever term estimates it
        piece = elbo_columns(piece, config.train.elbo_estimator)
        row = _history_row(step, piece)
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
        if self.progress is not None:
            self.progress(step, config.train.n_steps, row)

    def checkpoint(self, state: TrainState) -> None:
        """Write `state` as the run's checkpoint."""
        if self.run_dir is not None:
            from expfam.experiment.checkpoints import save_checkpoint

            save_checkpoint(self.run_dir, state)

    def interrupted(self) -> None:
        """Mark the run `interrupted` (its checkpoint is written by the trainer; the CLI says what was kept)."""
        if self.run_dir is not None:
            done = self.rows[-1]["step"] if self.rows else 0
            _mark(self.run_dir, self.info(INTERRUPTED, steps=done))

    def failed(self, error: str) -> None:
        """Mark the run `failed` with `error` (a write failure or an unexpected error), if the disk lets us."""
        if self.run_dir is not None:
            _mark(self.run_dir, self.info(FAILED, error=error))

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
                from expfam.experiment.plots import save_run_plots

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
        return metrics


def _train_and_write(
    prepared: PreparedRun,
    run_dir: Path | None,
    start: TrainState | None,
    rows: list[dict[str, float]],
    *,
    progress: ProgressCallback | None,
    log: Callable[[str], None] | None,
    plots: bool,
    registry: Registry,
    devices: int | None = None,
) -> dict[str, float]:
    recorder = RunRecorder(prepared, run_dir, rows, progress=progress, log=log, plots=plots)
    if run_dir is not None:  # a resumed run is written from here on
        interrupts.hold(lambda: stopped_run_text(run_dir))
    try:
        with sigterm_as_interrupt():
            params = recorder.begin()
            config = prepared.config
            started = time.perf_counter()
            try:
                result = train(
                    prepared.model,
                    params,
                    jnp.asarray(prepared.split.x_train),
                    config.train,
                    callback=recorder.callback,
                    registry=registry,
                    start=start,
                    checkpoint=recorder.checkpoint if config.train.checkpoint_every > 0 else None,
                    checkpoint_every=config.train.checkpoint_every,
                    devices=devices,
                )
            except TrainingDivergedError as error:
                recorder.diverged(error, params)
                raise
            return recorder.finish(result, time.perf_counter() - started)
    except KeyboardInterrupt:
        recorder.interrupted()
        raise
    except ExpfamError as error:
        if isinstance(error, RunWriteError):
            recorder.failed(str(error))
            if run_dir is not None:
                raise RunWriteError(
                    f"{error}; the run stopped: {stopped_run_text(run_dir)}", offending=error.offending
                ) from None
        raise  # diverged (marked already) or bad input
    except Exception as error:  # anything else ends the run too: it must not read "running" for ever
        recorder.failed(f"{type(error).__name__}: {error}")
        if "RESOURCE_EXHAUSTED" in str(error) or isinstance(error, MemoryError):
            where = f"; the run stopped: {stopped_run_text(run_dir)}" if run_dir is not None else ""
            raise RunFailedError(
                f"out of memory ({' '.join(str(error).split())[:160]}); lower batch_size, n_mc_samples, "
                f"n_conj_samples, n_latent or n_clusters{where}",
                offending="memory",
            ) from None
        raise


def _mark(run_dir: Path, info: Mapping[str, Any]) -> None:
    """Write `run.json` if the disk lets us (after a write failure it may not; the run then reads `running`)."""
    with contextlib.suppress(RunWriteError, OSError):
        write_info(run_dir, info)


def stopped_run_text(run_dir: Path) -> str:
    """What a stopped run kept and how to continue it (one sentence, no trailing period)."""
    from expfam.experiment.checkpoints import checkpoint_step

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


def evaluate_run(run_dir: str | Path, *, registry: Registry | None = None) -> dict[str, float]:
    """Recompute the metrics of a run directory from its saved parameters.

    Uses the run's `config.toml` (same data, split and evaluation key as
    [`train_run`][expfam.experiment.pipeline.train_run]), so a completed run gives the numbers in its
    `metrics.json`. Only a finished run is evaluated
    ([`expfam.experiment.runs.require_finished`][expfam.experiment.runs.require_finished]), and only when its
    files agree ([`check_run_matches`][expfam.experiment.checks.check_run_matches]).

    Raises:
        RunDirectoryError: the directory or a file in it is missing, unreadable, edited
            out of agreement with the others, or the run is not finished.
        ExpfamError: the run's data can no longer be loaded or checked.
    """
    require_unlocked(run_dir)
    require_finished(run_dir)
    config, params, _ = read_run(run_dir)
    prepared = prepare_run(config, registry=registry)
    check_run_matches(Path(run_dir), prepared.config, params, prepared.model, registry)
    return evaluate_prepared(prepared, jax.tree.map(jnp.asarray, params))


def default_run_name(config: RunConfig, *, now: float | None = None) -> str:
    """`<blocks>-<YYYYmmdd-HHMMSS>`, e.g. `hierarchical-20250101-120000` (`xy,xk` becomes `xy+xk`)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    blocks = parse_blocks(config.model.block)
    label = blocks if isinstance(blocks, str) else "+".join(blocks)
    return f"{label}-{stamp}"


__all__ = [
    "SUMMARY_COLUMNS",
    "PreparedRun",
    "ProgressCallback",
    "RunRecorder",
    "collapse_warning",
    "compact_float",
    "default_run_name",
    "evaluate_prepared",
    "evaluate_run",
    "format_summary",
    "observable_options",
    "parse_blocks",
    "prepare_run",
    "resume_run",
    "run_keys",
    "stopped_run_text",
    "summary_row",
    "train_run",
]
