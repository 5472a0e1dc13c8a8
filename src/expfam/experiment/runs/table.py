r"""The reference results table: its columns and the one formatter of its cells, for a run's summary and a sweep's report.

The single-run summary (`expfam train`, `expfam evaluate`:
[`format_summary`][expfam.experiment.runs.table.format_summary]) and the sweep report
([`expfam.experiment.sweeps.report`][expfam.experiment.sweeps.report]) format their rows with the same
[`format_cell`][expfam.experiment.runs.table.format_cell] and
[`markdown_table`][expfam.experiment.runs.table.markdown_table] (docs/metrics.md). Cell formats follow the
reference table: NMI 2 decimals, R² 3, Purity a percentage with 1 decimal, Recon 2, `lr` as `1.5e-3`; a
missing value (`None`) is `—`.

Examples:
    >>> format_learning_rate(0.0015), format_learning_rate(3e-4)
    ('1.5e-3', '3e-4')
    >>> format_cell("Purity", 0.768), format_cell("NMI", (0.5712, 0.01))
    ('76.8%', '0.57 ± 0.01')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from expfam.experiment.config import RunConfig

#: The reference table's columns with the widths of its separator row.
TABLE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("Run", 5),
    ("n_latent", 10),
    ("n_clusters", 12),
    ("lr", 6),
    ("kl_warmup", 11),
    ("conj_weight", 13),
    ("entropy_w", 11),
    ("post_entropy_w", 16),
    ("n_steps", 9),
    ("NMI", 5),
    ("Active", 8),
    ("R²", 5),
    ("Purity", 8),
    ("Recon", 7),
    ("Notes", 7),
)
#: Hyperparameter columns → `section.key` of the configuration.
HYPERPARAMETER_COLUMNS: dict[str, str] = {
    "n_latent": "model.n_latent",
    "n_clusters": "model.n_clusters",
    "lr": "train.learning_rate",
    "kl_warmup": "train.kl_warmup_steps",
    "conj_weight": "train.conj_weight",
    "entropy_w": "train.entropy_weight",
    "post_entropy_w": "train.posterior_entropy_weight",
    "n_steps": "train.n_steps",
}
#: Metric columns → keys of `metrics.json`.
METRIC_COLUMNS: dict[str, str] = {"NMI": "nmi", "R²": "r2", "Purity": "purity", "Recon": "recon"}
#: Test-split metrics, shown beside the validation metrics when runs hold out a validation split.
TEST_COLUMNS: dict[str, str] = {f"Test {column}": f"test_{key}" for column, key in METRIC_COLUMNS.items()}
#: Table columns that are not plotted or compared: active clusters (next to NMI, so a collapse is visible).
COUNT_COLUMNS: dict[str, str] = {"Active": "active_clusters"}
MISSING = "—"
#: The columns of a run's summary: the reference table's without Notes.
SUMMARY_COLUMNS: tuple[str, ...] = tuple(name for name, _ in TABLE_COLUMNS if name != "Notes")


def config_value(config: RunConfig, qualified: str) -> Any:
    """The value of `section.key` in `config`."""
    section, key = qualified.split(".", 1)
    return getattr(getattr(config, section), key)


def compact_float(value: float) -> str:
    """`3e-4`, `1.5e-3` as in the reference table (`0` stays `0`)."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_learning_rate(value: float) -> str:
    """`1.5e-3`, `3e-4`, `1e-3` as in the reference table (`0` stays `0`); the same format as `expfam train`'s row."""
    return compact_float(value)


def format_cell(column: str, value: Any) -> str:
    """One table cell in the reference table's format (`None` is `—`; `(mean, sd)` is `mean ± sd`)."""
    if value is None:
        return MISSING
    if isinstance(value, tuple):
        mean, sd = value
        return f"{format_cell(column, mean)} ± {format_cell(column, sd)}"
    if isinstance(value, str):
        return value.replace("|", "\\|").replace("\n", " ")
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    column = column.removeprefix("Test ")
    formats = {
        "lr": format_learning_rate,
        "NMI": "{:.2f}".format,
        "Active": "{:.0f}".format,
        "R²": "{:.3f}".format,
        "Recon": "{:.2f}".format,
    }
    if column in formats:
        return formats[column](value)
    if column == "Purity":
        return f"{100 * value:.1f}%"
    return repr(value) if isinstance(value, float) else str(value)


def float_or_none(value: Any) -> float | None:
    """`value` as a float, `None` kept (a missing metric)."""
    return None if value is None else float(value)


def markdown_table(columns: Sequence[tuple[str, int]], rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table: the header, a separator of `width` dashes per column, one line of
    [`format_cell`][expfam.experiment.runs.table.format_cell] cells per row (a missing cell is empty).
    """
    lines = [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "|" + "|".join("-" * width for _, width in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(name, row.get(name, "")) for name, _ in columns) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------- a run's summary
def summary_row(config: RunConfig, metrics: Mapping[str, float], *, run: str = "-") -> dict[str, Any]:
    """One row of the reference results table: `{column: value}` in `SUMMARY_COLUMNS` order.

    Values are raw numbers (`Purity` a fraction); [`format_summary`][expfam.experiment.runs.table.format_summary]
    formats them.
    """
    keys = {**METRIC_COLUMNS, **COUNT_COLUMNS}
    row: dict[str, Any] = {"Run": run}
    row.update({column: config_value(config, key) for column, key in HYPERPARAMETER_COLUMNS.items()})
    row.update({column: metrics.get(keys[column], math.nan) for column in SUMMARY_COLUMNS if column in keys})
    return {column: row[column] for column in SUMMARY_COLUMNS}


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table (header, separator, one line per row) in the reference table's format."""
    return markdown_table([(name, len(name) + 2) for name in SUMMARY_COLUMNS], rows)


__all__ = [
    "COUNT_COLUMNS",
    "HYPERPARAMETER_COLUMNS",
    "METRIC_COLUMNS",
    "MISSING",
    "SUMMARY_COLUMNS",
    "TABLE_COLUMNS",
    "TEST_COLUMNS",
    "compact_float",
    "config_value",
    "float_or_none",
    "format_cell",
    "format_learning_rate",
    "format_summary",
    "markdown_table",
    "summary_row",
]
