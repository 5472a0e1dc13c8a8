r"""One run from its configuration to its run directory: train it, resume it, re-evaluate it.

[`train_run`][expfam.experiment.runs.solo.train_run] checks everything that can be checked before any training
(configuration ranges, every registry name, the data files, the data against
the observable family's support, the run directory), then initialises the
parameters from the seed, trains, evaluates on the test split and writes the
run directory ([`expfam.experiment.runs`][expfam.experiment.runs]) through the one
[`RunRecorder`][expfam.experiment.runs.recorder.RunRecorder]. The same configuration and seed give the
same numbers.

Examples:
    Not run as a doctest: it trains and evaluates a model and writes `runs/quick`
    (about a minute on two cores); `tests/expfam/test_pipeline.py` runs the same path.

    >>> from expfam.experiment.config import config_from_mapping
    >>> from expfam.experiment.runs.table import format_summary, summary_row
    >>> config = config_from_mapping({"train": {"n_steps": 200}})          # doctest: +SKIP
    >>> metrics = train_run(config, Path("runs/quick"))                     # doctest: +SKIP
    >>> print(format_summary([summary_row(config, metrics, run="quick")]))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp

from expfam import interrupts
from expfam.errors import ExpfamError, RunFailedError, RunWriteError, TrainingDivergedError
from expfam.experiment.config import RunConfig, warn_about_config
from expfam.experiment.prepare import PreparedRun, parse_blocks, prepare_run
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.files import read_config, read_history, read_run
from expfam.experiment.runs.layout import COMPLETED, DIVERGED, read_info, require_finished, run_status
from expfam.experiment.runs.lock import require_unlocked, run_lock, writable_run_dir
from expfam.experiment.runs.recorder import (
    ProgressCallback,
    RunRecorder,
    evaluate_prepared,
    sigterm_as_interrupt,
    stopped_run_text,
    write_start,
)
from expfam.experiment.runs.trained import check_run_matches
from expfam.experiment.tracking import Tracking
from expfam.experiment.train.loop import train
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import TrainState
from expfam.plugins import Registry, get_registry
from expfam.tracker import Tracker


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
    trackers: Sequence[Tracker] = (),
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
        trackers: report the run to these too ([`expfam.tracker`][expfam.tracker]; e.g. from
            [`make_trackers`][expfam.experiment.tracking.make_trackers]). They are called after the
            files are written; one that fails is reported once and the run goes on without it.

    Returns:
        The test-split metrics of [`expfam.experiment.evaluation.evaluate`][expfam.experiment.evaluation.evaluate].

    Raises:
        ExpfamError: a bad configuration, name, data file, support violation or
            run directory, all before training starts.
        TrainingDivergedError: after saving the last finite parameters and the
            history into `out`.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after writing a checkpoint and marking
            the run `interrupted` (continue it with [`resume_run`][expfam.experiment.runs.solo.resume_run]).
    """
    registry = registry or get_registry()
    prepared = prepare_run(config, registry=registry, devices=devices)
    write = functools.partial(
        _train_and_write,
        prepared,
        progress=progress,
        log=log,
        plots=plots,
        registry=registry,
        devices=devices,
        trackers=trackers,
    )
    if out is None:
        warn_about_config(prepared.config)  # every check passed: the run will train
        return write(None, None, [])
    interrupts.hold(lambda: stopped_run_text(Path(out)))  # from here on, a signal stops at a safe point
    with writable_run_dir(out, overwrite) as run_dir:  # every check done: only now is the folder touched
        write_start(run_dir, prepared)
        warn_about_config(prepared.config)  # every check passed: the run will train
        return write(run_dir, None, [])


def resume_run(
    run_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    plots: bool = True,
    registry: Registry | None = None,
    devices: int | None = None,
    trackers: Sequence[Tracker] = (),
) -> dict[str, float]:
    """Continue an interrupted run from its last checkpoint; ends with the numbers of an uninterrupted run.

    The run's `config.toml` is used as it is; the data order and every random key
    are functions of (seed, step) ([`expfam.experiment.train.streams`][expfam.experiment.train.streams]), and the
    checkpoint holds the parameters, optimiser state, step and keys.

    Every check (configuration, data, devices, the checkpoint's step, keys and finite
    parameters, [`verify_checkpoint`][expfam.experiment.runs.checkpoints.verify_checkpoint]) runs under the run's
    lock and before `run.json` changes; a refused resume leaves the folder as it was.
    `trackers` hear a resumed start: each continues the run it tracked for `run_dir`, if any.

    Raises:
        RunDirectoryError: `run_dir` is not a run, has no checkpoint or a damaged one, has
            completed, or another process writes it.
    """
    from expfam.experiment.runs.checkpoints import load_checkpoint, verify_checkpoint

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
            prepared,
            run_dir,
            state,
            rows,
            progress=progress,
            log=log,
            plots=plots,
            registry=registry,
            devices=devices,
            trackers=trackers,
        )


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
    trackers: Sequence[Tracker] = (),
) -> dict[str, float]:
    tracking = Tracking(trackers)
    recorder = RunRecorder(
        prepared, run_dir, rows, progress=progress, log=log, plots=plots, tracking=tracking, resumed=start is not None
    )
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


def evaluate_run(run_dir: str | Path, *, registry: Registry | None = None) -> dict[str, float]:
    """Recompute the metrics of a run directory from its saved parameters.

    Uses the run's `config.toml` (same data, split and evaluation key as
    [`train_run`][expfam.experiment.runs.solo.train_run]), so a completed run gives the numbers in its
    `metrics.json`. Only a finished run is evaluated
    ([`expfam.experiment.runs.layout.require_finished`][expfam.experiment.runs.layout.require_finished]), and only when its
    files agree ([`check_run_matches`][expfam.experiment.runs.trained.check_run_matches]).

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


__all__ = ["default_run_name", "evaluate_run", "resume_run", "train_run"]
