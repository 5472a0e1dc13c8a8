"""The reference results table: one row per run, formatted as markdown (docs/metrics.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from expfam.experiment.config import RunConfig, config_to_mapping

#: The reference table's columns, in order (docs/metrics.md).
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


# ----------------------------------------------------------------- summary
def summary_row(config: RunConfig, metrics: Mapping[str, float], *, run: str = "-") -> dict[str, Any]:
    """One row of the reference results table: `{column: value}` in `SUMMARY_COLUMNS` order.

    Values are raw numbers (`Purity` a fraction); [`format_summary`][expfam.experiment.summary.format_summary]
    formats them.
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
    """A warning when fewer than half of the `K` clusters are active (hold a test point), else `None`.

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


#: How many times worse than the uniform distribution a chunk's ELBO may be before a warning (docs/training.md).
ELBO_FLOOR_FACTOR = 100.0


def elbo_floor(data_dim: int, n_trials: int) -> float:
    r"""The lowest sane ELBO per observation: $-100\,D\log(N+1)$.

    Every observation is $D$ counts in $0..N$, so the uniform distribution over them scores
    $\log p(x) = -D\log(N+1)$ whatever the family; a model that does a hundred times worse
    over a whole chunk is not learning (a learning rate far too large, a loss weight that
    swamps the ELBO), even at its random start (about 1 to 5 times worse).
    """
    return -ELBO_FLOOR_FACTOR * data_dim * math.log(n_trials + 1)


def elbo_warning(elbo: float, *, data_dim: int, n_trials: int, step: int, learning_rate: float) -> str | None:
    r"""A warning when a chunk's mean ELBO is below [`elbo_floor`][expfam.experiment.summary.elbo_floor], else `None`."""
    floor = elbo_floor(data_dim, n_trials)
    if not math.isfinite(elbo) or elbo >= floor:  # a non-finite ELBO is a divergence, reported as such
        return None
    return (
        f"the ELBO per observation over the chunk ending at step {step} is {elbo:.4g}, below {floor:.4g} "
        f"(a hundred times the uniform distribution's {floor / ELBO_FLOOR_FACTOR:.4g} over {data_dim} counts in "
        f"0..{n_trials}): training is not working; lower --learning-rate (now {learning_rate:g}) or the loss "
        "weights that swamp the ELBO"
    )


def compact_float(value: float) -> str:
    """`3e-4`, `1.5e-3` as in the reference table (`0` stays `0`)."""
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
    """A markdown table (header, separator, one line per row) in the reference table's format."""
    columns = list(SUMMARY_COLUMNS)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("-" * (len(c) + 2) for c in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_format_cell(c, row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------- configuration differences
def _flat_items(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat_items(f"{prefix}{key}.", value))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def config_differences(configs: Sequence[RunConfig]) -> dict[str, list[Any]]:
    """The configuration keys whose values differ between runs: `{"section.key": [value of each run]}`.

    Keys are dotted (`train.n_steps`; option tables one level deeper,
    `data.options.n_classes`), in the order of the configuration's sections; a key
    that one run's tables lack has the value `None` there. Empty when every
    configuration is the same.

    Examples:
        >>> import dataclasses
        >>> short = dataclasses.replace(RunConfig(), train=dataclasses.replace(RunConfig().train, n_steps=10))
        >>> config_differences([RunConfig(), short])
        {'train.n_steps': [8000, 10]}
    """
    flats = [
        _flat_items("", {f"{s}.{k}": v for s, table in config_to_mapping(c).items() for k, v in table.items()})
        for c in configs
    ]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    values = {key: [flat.get(key) for flat in flats] for key in keys}
    return {key: row for key, row in values.items() if any(value != row[0] for value in row[1:])}


def _config_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, float) else str(value)


def differences_text(headers: Sequence[str], differences: Mapping[str, Sequence[Any]]) -> str:
    """A markdown table of [`config_differences`][expfam.experiment.summary.config_differences] (empty: `""`)."""
    if not differences:
        return ""
    lines = [
        "Configuration keys that differ (from each run's config.toml):",
        "",
        "| Key | " + " | ".join(headers) + " |",
        "|-----|" + "|".join("-" * (len(h) + 2) for h in headers) + "|",
    ]
    for key, row in differences.items():
        lines.append(f"| {key} | " + " | ".join(_config_cell(value) for value in row) + " |")
    return "\n".join(lines)


__all__ = [
    "ELBO_FLOOR_FACTOR",
    "SUMMARY_COLUMNS",
    "collapse_warning",
    "compact_float",
    "config_differences",
    "differences_text",
    "elbo_floor",
    "elbo_warning",
    "format_summary",
    "summary_row",
]
