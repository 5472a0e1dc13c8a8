r"""The public functions behind the ``expfam`` command: train a run, re-evaluate it, summarise it.

:func:`train_run` checks everything that can be checked before any training
(configuration ranges, every registry name, the data files, the data against
the observable family's support, the run directory), then initialises the
parameters from the seed, trains, evaluates on the test split and writes the
run directory (:mod:`expfam.experiment.runs`). The same configuration and seed give the
same numbers.

Example:
    >>> from expfam.experiment.config import RunConfig, config_from_mapping
    >>> config = config_from_mapping({"train": {"n_steps": 200}})          # doctest: +SKIP
    >>> metrics = train_run(config, Path("runs/quick"))                     # doctest: +SKIP
    >>> print(format_summary([summary_row(config, metrics, run="quick")]))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import __version__ as expfam_version
from expfam.builder import build_model, resolve_blocks
from expfam.data import DataSplit, check_data_for_family, load_dataset
from expfam.errors import TrainingDivergedError
from expfam.experiment.config import RunConfig, validate_config
from expfam.experiment.evaluation import evaluate, quick_metrics
from expfam.experiment.runs import (
    create_run_dir,
    read_run,
    save_params,
    write_config,
    write_history,
    write_info,
    write_metrics,
)
from expfam.experiment.training import train
from expfam.model import Harmonium, Params
from expfam.plugins import Registry, get_registry

#: ``progress(step, n_steps, row)`` after every logged chunk; ``row`` is the history row.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

#: The seed table's columns, in order (``../seeds``; MODEL.md §8).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "Run",
    "n_latent",
    "n_clusters",
    "lr",
    "kl_warmup",
    "conj_weight",
    "entropy_w",
    "post_entropy_w",
    "n_steps",
    "NMI",
    "Active",
    "R²",
    "Purity",
    "Recon",
)


@dataclass(frozen=True)
class PreparedRun:
    """A checked configuration with its data and model, ready to train."""

    config: RunConfig
    split: DataSplit
    model: Harmonium


def parse_blocks(text: str) -> str | list[str]:
    """A block-set or block name as it is, or ``"xy,xk"`` as ``["xy", "xk"]``."""
    if "," not in text:
        return text.strip()
    return [name.strip() for name in text.split(",") if name.strip()]


def observable_options(config: RunConfig, registry: Registry) -> dict[str, Any]:
    """Options of the observable family taken from ``[model]`` (``n_trials`` where the family has it)."""
    cls = registry.family(config.model.observable)
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return {name: getattr(config.model, name) for name in sorted(names - {"size"}) if hasattr(config.model, name)}


def _resolved_data_path(config: RunConfig) -> RunConfig:
    """The configuration with ``[data] data`` made absolute, so the run can be re-evaluated from anywhere."""
    if not config.data.data:
        return config
    absolute = str(Path(config.data.data).expanduser().resolve())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, data=absolute))


def prepare_run(config: RunConfig, *, registry: Registry | None = None) -> PreparedRun:
    """Check a configuration and load what it names, before any training.

    In order: value ranges; the observable family, the blocks and the dataset in
    the registry; the data files; the model's shapes; the data against the
    observable family's support.

    Raises:
        ConfigurationError, UnknownNameError, DataError, SupportError: naming the problem.
    """
    registry = registry or get_registry()
    validate_config(config)
    config = _resolved_data_path(config)
    options = observable_options(config, registry)
    blocks = resolve_blocks(parse_blocks(config.model.block), registry)
    registry.dataset(config.data.dataset)
    split = load_dataset(
        config.data.dataset,
        path=config.data.data or None,
        n_trials=config.model.n_trials,
        seed=config.train.seed,
        test_fraction=config.data.test_fraction,
        registry=registry,
    )
    if config.data.validation_fraction > 0:
        split = split.validation_split(config.data.validation_fraction, seed=config.train.seed)
    model = build_model(
        observable=config.model.observable,
        observable_options=options,
        data_dim=split.n_features,
        n_latent=config.model.n_latent,
        n_clusters=config.model.n_clusters,
        blocks=list(blocks),
        registry=registry,
    )
    check_data_for_family(split, model.observable)
    return PreparedRun(config=config, split=split, model=model)


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The keys of a run, all from ``seed``: ``init``, ``progress``, ``evaluate``, ``plots``.

    (Training draws its batches and samples from its own key, ``PRNGKey(seed + 1)``.)
    """
    init, progress, evaluation, plots = jax.random.split(jax.random.PRNGKey(seed), 4)
    return {"init": init, "progress": progress, "evaluate": evaluation, "plots": plots}


def _history_row(step: int, piece: Mapping[str, np.ndarray]) -> dict[str, float]:
    first = [name for name in ("loss", "elbo") if name in piece]
    names = first + sorted(name for name in piece if name not in first)
    return {"step": step, **{name: float(np.mean(piece[name])) for name in names}}


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
        "x64": bool(jax.config.jax_enable_x64),
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
) -> dict[str, float]:
    """Train one run from its configuration and write its run directory.

    Args:
        config: the whole run configuration.
        out: the run directory (``None``: train and evaluate, write nothing).
        overwrite: replace the run files of an existing non-empty ``out``.
        progress: called after every logged chunk with ``(step, n_steps, row)``;
            ``row`` holds the chunk means of the loss terms and the test NMI and R².
        log: called with one line of text at each stage (data, model, evaluation, ...).
        plots: write the four PNG plots into ``out``.
        registry: where names are looked up (default: the installed plugins).

    Returns:
        The test-split metrics of :func:`expfam.experiment.evaluation.evaluate`.

    Raises:
        ExpfamError: a bad configuration, name, data file, support violation or
            run directory, all before training starts.
        TrainingDivergedError: after saving the last finite parameters and the
            history into ``out``.
    """
    say = log or (lambda text: None)
    registry = registry or get_registry()
    prepared = prepare_run(config, registry=registry)
    config, split, model = prepared.config, prepared.split, prepared.model
    run_dir = create_run_dir(out, overwrite) if out is not None else None
    say(f"data: {split.describe()}")
    say(
        f"model: {model.observable.describe()} ↔ blocks {'+'.join(model.block_names)}, "
        f"n_latent={config.model.n_latent}, n_clusters={model.n_clusters}"
    )
    if run_dir is not None:
        write_config(run_dir, config)
        write_info(run_dir, _info(prepared, "running"))
        say(f"run directory: {run_dir}")
    say(f"training {config.train.n_steps} steps (the first chunk includes compilation)")

    keys = run_keys(config.train.seed)
    params = model.init(keys["init"], jnp.asarray(split.x_train))
    rows: list[dict[str, float]] = []

    def callback(step: int, current: Params, piece: Mapping[str, np.ndarray]) -> None:
        # the ELBO estimator's value is the ELBO whichever term estimates it
        piece = {("elbo" if name == config.train.elbo_estimator else name): value for name, value in piece.items()}
        row = _history_row(step, piece)
        row.update(quick_metrics(model, current, split.x_test, split.y_test, keys["progress"]))
        rows.append(row)
        if run_dir is not None:
            write_history(run_dir, rows)
        if progress is not None:
            progress(step, config.train.n_steps, row)

    started = time.perf_counter()
    try:
        result = train(model, params, jnp.asarray(split.x_train), config.train, callback=callback, registry=registry)
    except TrainingDivergedError as error:
        if run_dir is not None:
            save_params(run_dir, error.last_params if error.last_params is not None else params)
            write_history(run_dir, rows)
            write_info(
                run_dir,
                _info(
                    prepared,
                    "diverged",
                    steps=rows[-1]["step"] if rows else 0,
                    diverged={"step": error.step, "term": error.term, "message": str(error)},
                    train_seconds=time.perf_counter() - started,
                ),
            )
            say(f"saved the last finite parameters and the history to {run_dir}")
        raise
    train_seconds = time.perf_counter() - started
    say("evaluating on the test split")
    metrics = evaluate(model, result.params, split.x_test, split.y_test, key=keys["evaluate"], config=config.evaluate)
    if run_dir is not None:
        save_params(run_dir, result.params)
        write_metrics(run_dir, metrics)
        write_history(run_dir, rows)
        if plots:
            from expfam.experiment.plots import save_run_plots

            say("writing plots")
            save_run_plots(
                run_dir,
                model,
                result.params,
                split.x_test,
                split.image_shape,
                rows,
                key=keys["plots"],
                value_range=(0.0, float(split.n_trials)),
            )
        write_info(
            run_dir,
            _info(
                prepared,
                "completed",
                steps=result.steps,
                train_seconds=train_seconds,
                total_seconds=time.perf_counter() - started,
            ),
        )
    return metrics


def evaluate_run(run_dir: str | Path, *, registry: Registry | None = None) -> dict[str, float]:
    """Recompute the test metrics of a run directory from its saved parameters.

    Uses the run's ``config.toml`` (same data, split and evaluation key as
    :func:`train_run`), so a completed run gives the numbers in its ``metrics.json``.

    Raises:
        RunDirectoryError: the directory or a file in it is missing or unreadable.
        ExpfamError: the run's data can no longer be loaded or checked.
    """
    config, params, _ = read_run(run_dir)
    prepared = prepare_run(config, registry=registry)
    params = jax.tree.map(jnp.asarray, params)
    keys = run_keys(prepared.config.train.seed)
    split = prepared.split
    return evaluate(
        prepared.model, params, split.x_test, split.y_test, key=keys["evaluate"], config=prepared.config.evaluate
    )


def default_run_name(config: RunConfig, *, now: float | None = None) -> str:
    """``<blocks>-<YYYYmmdd-HHMMSS>``, e.g. ``hierarchical-20250101-120000`` (``xy,xk`` becomes ``xy+xk``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    blocks = parse_blocks(config.model.block)
    label = blocks if isinstance(blocks, str) else "+".join(blocks)
    return f"{label}-{stamp}"


# ----------------------------------------------------------------- summary
def summary_row(config: RunConfig, metrics: Mapping[str, float], *, run: str = "-") -> dict[str, Any]:
    """One row of the seed's results table: ``{column: value}`` in :data:`SUMMARY_COLUMNS` order.

    Values are raw numbers (``Purity`` a fraction); :func:`format_summary` formats them.
    """
    model, train_config = config.model, config.train
    return {
        "Run": run,
        "n_latent": model.n_latent,
        "n_clusters": model.n_clusters,
        "lr": train_config.learning_rate,
        "kl_warmup": train_config.kl_warmup_steps,
        "conj_weight": train_config.conj_weight,
        "entropy_w": train_config.entropy_weight,
        "post_entropy_w": train_config.posterior_entropy_weight,
        "n_steps": train_config.n_steps,
        "NMI": metrics.get("nmi", math.nan),
        "Active": metrics.get("active_clusters", math.nan),
        "R²": metrics.get("r2", math.nan),
        "Purity": metrics.get("purity", math.nan),
        "Recon": metrics.get("recon", math.nan),
    }


def collapse_warning(metrics: Mapping[str, float], n_clusters: int) -> str | None:
    """A warning when fewer than half of the ``K`` clusters are active (hold a test point), else ``None``.

    Such a run has collapsed: its NMI compares a coarser clustering than asked for.
    """
    active = metrics.get("active_clusters", math.nan)
    if math.isnan(active) or active >= n_clusters / 2:
        return None
    return (
        f"cluster collapse: only {active:.0f} of {n_clusters} clusters are active on the test split "
        "(below half); try a larger posterior_entropy_weight (spreads each batch over the clusters), "
        "a longer kl_warmup_steps, or fewer clusters"
    )


def compact_float(value: float) -> str:
    """``3e-4``, ``1.5e-3`` as in the seed table (``0`` stays ``0``)."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _format_cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if column == "lr":
        return compact_float(float(value))
    if column == "NMI":
        return f"{value:.2f}"
    if column == "Active":
        return f"{value:.0f}"
    if column == "R²":
        return f"{value:.3f}"
    if column == "Purity":
        return f"{100 * value:.1f}%"
    if column == "Recon":
        return f"{value:.2f}"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table (header, separator, one line per row) in the seed table's format."""
    columns = list(SUMMARY_COLUMNS)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("-" * (len(c) + 2) for c in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_format_cell(c, row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


__all__ = [
    "SUMMARY_COLUMNS",
    "PreparedRun",
    "ProgressCallback",
    "collapse_warning",
    "compact_float",
    "default_run_name",
    "evaluate_run",
    "format_summary",
    "observable_options",
    "parse_blocks",
    "prepare_run",
    "run_keys",
    "summary_row",
    "train_run",
]
