"""`expfam train`: train one run and write its run directory.

Every key of the `[model]`, `[data]` and `[train]` sections of the run
configuration is a flag (`learning_rate` → `--learning-rate`). A flag given
on the command line overrides `--config FILE`, which overrides the defaults
of [`RunConfig`][expfam.experiment.config.RunConfig] for the chosen block set
([`default_config`][expfam.experiment.config.default_config]); `[evaluate]` and the option tables
(`[model.observable_options]`, `[data.options]`) come from the file only;
`--loss NAME=WEIGHT` (repeatable) adds to `[train.loss_weights]`, and
`--block-option NAME.KEY=VALUE` and `--loss-option NAME.KEY=VALUE` (repeatable) set keys
of `[model.block_options.NAME]` and `[train.loss_options.NAME]` over the file's.
`--resume RUN_DIR` continues an interrupted run from its checkpoint.
`--track NAME` (repeatable) and `--tracking-uri URI` report the run to trackers too (docs/tracking.md),
over the `[track]` table of `--config`.
"""

import contextlib
import dataclasses
import inspect
import json
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import JsonFlag, emit_json
from cli.progress import ProgressBar
from cli.tracking import TrackFlag, TrackingUriFlag, trackers_from_flags
from expfam import interrupts
from expfam.errors import ConfigurationError
from expfam.experiment.config import SECTIONS, RunConfig, config_from_mapping, default_config, load_config, section_keys
from expfam.experiment.config_text import Options
from expfam.experiment.prepare import pixel_families
from expfam.experiment.runs.files import read_config
from expfam.experiment.runs.health import collapse_warning
from expfam.experiment.runs.layout import COMPLETED, INTERRUPTED, run_status
from expfam.experiment.runs.recorder import stopped_run_text
from expfam.experiment.runs.solo import default_run_name, resume_run, train_run
from expfam.experiment.runs.table import format_summary, summary_row
from expfam.plugins import Registry, get_registry

FLAG_SECTIONS: tuple[str, ...] = ("model", "data", "train")

HELP: dict[str, str] = {
    "block": "Block set ({block_sets}) or comma-separated block names ({blocks}).",
    "observable": "Observable family ({families}).",
    "n_trials": "Trial count N: pixels are mapped to counts 0..N (and N of a binomial observable).",
    "n_latent": "Number of binary latent units n.",
    "n_clusters": "Number of clusters K (at least 2).",
    "dataset": "Dataset ({datasets}).",
    "data": "Path for file datasets: a folder of IDX files (idx) or an .npz archive (npz).",
    "test_fraction": "Share of the data held out for testing (datasets that draw a split).",
    "validation_fraction": "Share of the training split held out and evaluated instead of the test split (0: off).",
    "learning_rate": "Adam learning rate.",
    "lr_warmup_steps": "Steps of the linear learning-rate warmup from 0.",
    "weight_decay": "AdamW weight decay (0: plain Adam).",
    "n_steps": "Training steps.",
    "batch_size": "Observations per step (drawn with replacement).",
    "kl_warmup_steps": "Steps over which the KL weight β rises from 0 to 1.",
    "conj_warmup_steps": "Steps over which the conjugation-penalty weight rises from 0 to 1.",
    "conj_weight": "Weight of the conjugation penalty Var_p[r].",
    "entropy_weight": "Weight of the prior cluster entropy H(p(k)).",
    "posterior_entropy_weight": "Weight of the entropy of the batch-mean responsibilities.",
    "recognition_conj_weight": "Weight of the recognition-conjugation term (0: off).",
    "elbo_estimator": "Loss term that estimates the ELBO: 'elbo' (score of q(y, k | x)) or "
    "'rao_blackwell_elbo' (cluster summed out of the score).",
    "n_mc_samples": "Posterior samples per observation for the ELBO.",
    "n_conj_samples": "Prior samples for the conjugation penalty (and the analytic ρ fit).",
    "rho_mode": "'learned' (ρ_y is trained) or 'analytic' (least-squares fit every step).",
    "cluster_init": "Starting clusters: 'random'; 'kmeans' (before step 0, each cluster's observable bias "
    "fitted to its KMeans points, p(k) their shares; needs the xk block); "
    "'spectral' (the same from spectral clustering's partition of the training rows; default of --block full); or "
    "'latent_kmeans' (once, at --cluster-init-step, KMeans on the posterior mean latent units sets the "
    "prior's clusters; default otherwise).",
    "cluster_init_step": "Step of the 'latent_kmeans' initialisation (at the first chunk boundary at or after it).",
    "seed": "Seed of initialisation, batches, data split and evaluation.",
    "log_every": "Steps per chunk between progress lines, history rows and NMI/R² checks.",
    "checkpoint_every": "Chunks between checkpoints; Ctrl-C and SIGTERM checkpoint too (0: none at all, so an interrupted run cannot be resumed).",
    "block_schedule": "Start step of blocks, e.g. 'xyk:1000,xk:1000': those start at zero and are held "
    "there until their step (full model: hierarchical until then).",
    "block_learning_rates": "Learning-rate factors of blocks, e.g. 'xyk:0.1,xk:0.1' (blocks not named: 1).",
}


@contextlib.contextmanager
def _interrupt_exit(run_dir: Path) -> Iterator[None]:
    """Ctrl-C or SIGTERM: one line saying what was kept and how to resume; exit with 130.

    Under the console script a signal is raised only at safe points ([`expfam.interrupts`][expfam.interrupts]);
    the last one is here, so a signal that came after the run's last safe point is not lost.
    """
    try:
        yield
        interrupts.check()
    except KeyboardInterrupt:
        interrupts.settle()  # no XLA work may outlive the interpreter
        status = run_status(run_dir)
        if status == INTERRUPTED:
            text = stopped_run_text(run_dir)
        elif status == COMPLETED:
            text = f"the run had completed before the signal; its results are kept in {run_dir}"
        else:
            text = "before training started; no run files were written"
        typer.echo(f"\ninterrupted: {text}", err=True)
        raise typer.Exit(130) from None


def parse_loss(values: list[str]) -> dict[str, float]:
    """`["prior_entropy=2.5", ...]` as `{"prior_entropy": 2.5}`; a malformed item is named."""
    weights: dict[str, float] = {}
    for item in values:
        name, sep, text = item.partition("=")
        try:
            weight = float(text)
        except ValueError:
            weight = None
        if not sep or not name.strip() or weight is None:
            raise ConfigurationError(
                f"--loss {item!r}: expected NAME=WEIGHT, e.g. --loss prior_entropy=2.5", offending=item
            )
        weights[name.strip()] = weight
    return weights


def parse_option_flags(values: list[str], flag: str) -> dict[str, dict[str, Any]]:
    r"""`["xy_scaled.init_scale=0.5", ...]` as `{"xy_scaled": {"init_scale": 0.5}}`.

    `VALUE` is read as a TOML scalar: an integer, a float, `true`/`false` or a quoted
    string; a bare word that is not TOML (`fast`) is taken as a string. A later flag for the
    same `NAME.KEY` wins.

    Raises:
        ConfigurationError: an item that is not `NAME.KEY=VALUE`, or a value that is a TOML
            array, table or date (exit 2, before any work).
    """
    tables: dict[str, dict[str, Any]] = {}
    for item in values:
        target, sep, text = item.partition("=")
        name, dot, key = target.strip().partition(".")
        if not sep or not dot or not name.strip() or not key.strip() or not text.strip():
            raise ConfigurationError(
                f"{flag} {item!r}: expected NAME.KEY=VALUE, e.g. {flag} {_FLAG_EXAMPLES[flag]}", offending=item
            )
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()  # a bare word: a string
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigurationError(
                f"{flag} {item!r}: the value must be a number, true/false or a string, got "
                f"{type(value).__name__} {text.strip()!r}; set tables and lists in the config file",
                offending=item,
            )
        tables.setdefault(name.strip(), {})[key.strip()] = value
    return tables


_FLAG_EXAMPLES = {"--block-option": "xy_scaled.init_scale=0.5", "--loss-option": "l2.average=true"}


def _merged(base: Options, flags: dict[str, dict[str, Any]]) -> dict[str, Any]:
    r"""`base` (`{name: {key: value}}` from the config file) with `flags` laid over it, key by key."""
    merged = {name: dict(table) for name, table in base.to_dict().items()}
    for name, table in flags.items():
        merged.setdefault(name, {}).update(table)
    return merged


def _parameter(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


#: Metavariables of the flags: names of registered components, paths, and the value's type otherwise.
METAVARS: dict[str, str] = {"block": "NAME[,NAME...]", "observable": "NAME", "dataset": "NAME", "data": "PATH"}
TYPE_METAVARS: dict[type, str] = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def _option(key: str, kind: type, default: Any, names: dict[str, str]) -> inspect.Parameter:
    """`--key-name`, `None` unless given, with the config default in its help."""
    text = HELP.get(key, key.replace("_", " ") + ".").format(**names)
    shown = default if default != "" else "none"
    metavar = METAVARS.get(key, TYPE_METAVARS.get(kind, "VALUE"))
    option = typer.Option(
        f"--{key.replace('_', '-')}", help=f"{text} (default: {shown})", show_default=False, metavar=metavar
    )
    return _parameter(key, Annotated[kind | None, option])


def _names(registry: Registry) -> dict[str, str]:
    kinds = ("blocks", "block_sets", "datasets", "objectives")
    names = {kind: ", ".join(registry.names(kind)) for kind in kinds}
    return {**names, "families": ", ".join(pixel_families(registry))}  # only those that can model pixels


def make_command(registry: Registry | None = None) -> Any:
    """The `train` command, its choices listed from `registry` (default: the installed plugins)."""
    registry = registry or get_registry()
    names = _names(registry)
    defaults = RunConfig()
    parameters = []
    for section in FLAG_SECTIONS:
        kinds = typing.get_type_hints(SECTIONS[section])
        for field in dataclasses.fields(SECTIONS[section]):
            if kinds[field.name] is Options:  # option tables come from --config (and --loss)
                continue
            default = getattr(getattr(defaults, section), field.name)
            parameters.append(_option(field.name, kinds[field.name], default, names))
    config_help = "A run.toml (e.g. a run's config.toml); flags override it."
    out_help = "Run directory. (default: runs/<block>-<YYYYmmdd-HHMMSS>)"
    overwrite_help = "Replace the run files of an existing non-empty --out."
    loss_help = "A loss term and its weight, NAME=WEIGHT (repeatable); 0 turns a term off. Terms: {objectives}."
    block_option_help = (
        "An option of a block, NAME.KEY=VALUE (repeatable; VALUE a TOML number, true/false or string), "
        "over [model.block_options.NAME] of --config."
    )
    loss_option_help = (
        "An option of a loss term, NAME.KEY=VALUE (repeatable; VALUE a TOML number, true/false or string), "
        "over [train.loss_options.NAME] of --config."
    )
    resume_help = "Continue the interrupted run RUN_DIR from its last checkpoint (other options not allowed)."
    parameters += [
        _parameter(
            "loss",
            Annotated[
                list[str] | None,
                typer.Option("--loss", help=loss_help.format(objectives=names["objectives"]), metavar="NAME=WEIGHT"),
            ],
        ),
        _parameter(
            "block_option",
            Annotated[
                list[str] | None,
                typer.Option("--block-option", help=block_option_help, metavar="NAME.KEY=VALUE"),
            ],
        ),
        _parameter(
            "loss_option",
            Annotated[
                list[str] | None,
                typer.Option("--loss-option", help=loss_option_help, metavar="NAME.KEY=VALUE"),
            ],
        ),
        _parameter("resume", Annotated[Path | None, typer.Option("--resume", metavar="RUN_DIR", help=resume_help)]),
        _parameter("config", Annotated[Path | None, typer.Option("--config", help=config_help, metavar="PATH")]),
        _parameter("out", Annotated[Path | None, typer.Option("--out", help=out_help, metavar="PATH")]),
        _parameter("overwrite", Annotated[bool, typer.Option("--overwrite", help=overwrite_help)], default=False),
        _parameter(
            "devices",
            Annotated[
                int | None,
                typer.Option("--devices", min=1, metavar="N", help="Split each batch over N devices (data parallel)."),
            ],
        ),
        _parameter("json_output", JsonFlag, default=False),
        _parameter("track", TrackFlag),
        _parameter("tracking_uri", TrackingUriFlag),
    ]

    def train(**options: Any) -> None:
        """Train a harmonium, evaluate it on the test split, and write the run directory."""
        config_file, out, overwrite = options.pop("config"), options.pop("out"), options.pop("overwrite")
        json_output, devices = options.pop("json_output"), options.pop("devices")
        loss, resume = options.pop("loss") or [], options.pop("resume")
        track, tracking_uri = options.pop("track"), options.pop("tracking_uri")
        block_flags = parse_option_flags(options.pop("block_option") or [], "--block-option")
        loss_flags = parse_option_flags(options.pop("loss_option") or [], "--loss-option")
        given = [f"--{key.replace('_', '-')}" for key, value in options.items() if value is not None]
        if resume is not None:
            extra = given + [flag for flag, value in (("--config", config_file), ("--out", out)) if value is not None]
            extra += [flag for flag, value in (("--block-option", block_flags), ("--loss-option", loss_flags)) if value]
            if extra or loss or overwrite:
                raise ConfigurationError(
                    f"--resume continues RUN_DIR with its own config.toml; drop {', '.join(extra or ['--loss'])}",
                    offending=extra,
                )
            trackers = trackers_from_flags(track, tracking_uri, None, base=resume.resolve().parent, registry=registry)
            bar = ProgressBar()
            interrupts.set_message(
                f"nothing was written; {resume} is as it was: continue with `expfam train --resume {resume}`"
            )
            with _interrupt_exit(resume):
                metrics = resume_run(
                    resume, progress=bar, log=bar.message, registry=registry, devices=devices, trackers=trackers
                )
            bar.close()
            config, out = read_config(resume), resume
        else:
            block = options["block"]
            if block is None and config_file is not None:
                block = load_config(config_file).model.block
            base = default_config(block)  # per-block-set defaults under the file and the flags
            if config_file is not None:
                base = load_config(config_file, base)
            overrides: dict[str, dict[str, Any]] = {
                section: {key: options[key] for key in section_keys(section) if options.get(key) is not None}
                for section in FLAG_SECTIONS
            }
            if loss:
                overrides["train"]["loss_weights"] = {**base.train.loss_weights, **parse_loss(loss)}
            if block_flags:  # flags win over [model.block_options.NAME] of --config, key by key
                overrides["model"]["block_options"] = _merged(base.model.block_options, block_flags)
            if loss_flags:
                overrides["train"]["loss_options"] = _merged(base.train.loss_options, loss_flags)
            config = config_from_mapping(overrides, base)
            out = out if out is not None else Path("runs") / default_run_name(config)
            runs_folder = out.expanduser().resolve().parent
            trackers = trackers_from_flags(track, tracking_uri, config_file, base=runs_folder, registry=registry)
            bar = ProgressBar()
            with _interrupt_exit(out):
                metrics = train_run(
                    config,
                    out,
                    overwrite=overwrite,
                    progress=bar,
                    log=bar.message,
                    registry=registry,
                    devices=devices,
                    trackers=trackers,
                )
            bar.close()
        if json_output:
            emit_json({"run_dir": out, "summary": summary_row(config, metrics, run=out.name), "metrics": metrics})
            return
        typer.echo(format_summary([summary_row(config, metrics, run=out.name)]))
        warning = collapse_warning(metrics, config.model.n_clusters)
        if warning is not None:
            typer.echo(f"warning: {warning}")
        typer.echo(f"metrics: {json.dumps(metrics)}")
        typer.echo(f"run directory: {out}")

    train.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return train
