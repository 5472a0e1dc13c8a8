r"""The files of a run directory: parameters, configuration, metrics, model spec and history.

Every writer goes through [`expfam.experiment.runs.atomic`][expfam.experiment.runs.atomic]; the file
names and the run's status are in [`expfam.experiment.runs.layout`][expfam.experiment.runs.layout].

Examples:
    >>> import numpy as np, tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp())
    >>> save_params(run, {"prior": {"b_y": np.zeros(3)}, "rho_y": np.ones(3)}).name
    'params.npz'
    >>> sorted(load_params(run))
    ['prior', 'rho_y']
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from expfam.experiment.config import RunConfig, config_to_toml, load_config
from expfam.experiment.runs.atomic import (
    RunDirectoryError,
    atomic_open,
    atomic_write_text,
    json_text,
    plain_value,
    read_json,
)
from expfam.experiment.runs.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PARAMS_FILE,
    require_file,
)

_SEPARATOR = "/"


# ----------------------------------------------------------------- parameters
def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """`{"a/b/c": array}` from a nested mapping of arrays."""
    flat: dict[str, np.ndarray] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name or _SEPARATOR in name:
            raise RunDirectoryError(
                f"parameter name {name!r} cannot be saved: names must be non-empty strings without '/'",
                offending=name,
            )
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, key + _SEPARATOR))
        else:
            flat[key] = np.asarray(value)
    return flat


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The nested dict of [`flatten_params`][expfam.experiment.runs.files.flatten_params]'s output."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(_SEPARATOR)
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def save_params(run_dir: str | Path, params: Mapping[str, Any]) -> Path:
    """Write the parameter pytree to `run_dir/params.npz` (keys are '/'-joined paths)."""
    path = Path(run_dir) / PARAMS_FILE
    arrays: dict[str, Any] = flatten_params(params)  # Any: savez's stubs would read a key as its allow_pickle flag
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_params(run_dir: str | Path) -> dict[str, Any]:
    """Read `run_dir/params.npz` back into the nested dict [`save_params`][expfam.experiment.runs.files.save_params] was given."""
    path = require_file(Path(run_dir), PARAMS_FILE)
    return unflatten_params(read_archive(path, "parameter archive"))


def read_archive(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of the `.npz` file `path`, or a one-line error (damaged, truncated, not an archive).

    Raises:
        RunDirectoryError: naming `path`, what is wrong and the fix.
    """
    fix = "it is damaged or was not written by expfam; restore it or train the run again"
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise RunDirectoryError(
            f"{str(path)!r} cannot be read ({error.strerror or error})", offending=str(path)
        ) from None
    if magic != b"PK\x03\x04":
        raise RunDirectoryError(
            f"{str(path)!r} is not a readable {what} (not an .npz zip archive); {fix}", offending=str(path)
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            flat = {key: archive[key] for key in archive.files}
    except Exception as error:  # zipfile, zlib, numpy format errors: all mean a damaged file
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise RunDirectoryError(
            f"{str(path)!r} is not a readable {what} ({reason}); {fix}", offending=str(path)
        ) from None
    for key, value in flat.items():
        if value.dtype.kind not in "biuf":
            raise RunDirectoryError(
                f"{str(path)!r}: array {key!r} has dtype {value.dtype}, not numbers; {fix}", offending=key
            )
    return flat


# ----------------------------------------------------------------- config, metrics, info
def write_config(run_dir: str | Path, config: RunConfig) -> Path:
    """Write `run_dir/config.toml` (every key; [`expfam.experiment.config.load_config`][expfam.experiment.config.load_config] reads it back equal)."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, config_to_toml(config))
    return path


def read_config(run_dir: str | Path) -> RunConfig:
    """The configuration a run was trained with."""
    return load_config(require_file(Path(run_dir), CONFIG_FILE))


def write_metrics(run_dir: str | Path, metrics: Mapping[str, float]) -> Path:
    """Write `run_dir/metrics.json` (NaN is written as the JSON extension `NaN`)."""
    path = Path(run_dir) / METRICS_FILE
    atomic_write_text(path, json_text(metrics))
    return path


def read_metrics(run_dir: str | Path) -> dict[str, float] | None:
    """The final metrics of a run, or `None` when it has none (it diverged or is still running)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    metrics = read_json(path)
    bad = [key for key, value in metrics.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
    if bad:
        raise RunDirectoryError(
            f"{str(path)!r}: {bad[0]!r} is {type(metrics[bad[0]]).__name__} {metrics[bad[0]]!r}, not a number; "
            "the file was edited or damaged — restore it, or recompute it with `expfam evaluate`",
            offending=bad[0],
        )
    return metrics


def write_model_spec(run_dir: str | Path, spec: Mapping[str, Any]) -> Path:
    """Write `run_dir/model.json`: what [`expfam.experiment.runs.trained.load_run`][expfam.experiment.runs.trained.load_run] rebuilds the model from."""
    path = Path(run_dir) / MODEL_FILE
    atomic_write_text(path, json_text(spec))
    return path


def read_model_spec(run_dir: str | Path) -> dict[str, Any]:
    """`model.json` of a run.

    Raises:
        RunDirectoryError: the file is missing (a run written before expfam stored it) or not JSON.
    """
    return read_json(require_file(Path(run_dir), MODEL_FILE))


# ----------------------------------------------------------------- history
def history_columns(rows: Sequence[Mapping[str, float]]) -> list[str]:
    """`step` first, then every other key in order of first appearance."""
    columns = ["step"]
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


def history_text(rows: Sequence[Mapping[str, float]]) -> str:
    """CSV text of the history rows (missing values are empty cells)."""
    buffer = io.StringIO()
    columns = history_columns(rows)
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    value = plain_value(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_history(run_dir: str | Path, rows: Sequence[Mapping[str, float]]) -> Path:
    """Write `run_dir/history.csv`: one row per logged chunk."""
    path = Path(run_dir) / HISTORY_FILE
    atomic_write_text(path, history_text(rows))
    return path


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of `history.csv` (`step` as int, the rest as float; empty cells left out)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            row: dict[str, float] = {}
            for key, text in record.items():
                if text in ("", None):
                    continue
                row[key] = int(text) if key == "step" else float(text)
            rows.append(row)
    return rows


# ----------------------------------------------------------------- whole run
def read_run(run_dir: str | Path) -> tuple[RunConfig, dict[str, Any], dict[str, float] | None]:
    """`(config, params, metrics)` of a run directory (`metrics` is `None` if there are none).

    Raises:
        RunDirectoryError: the directory, `config.toml` or `params.npz` is missing or unreadable.
    """
    run_dir = Path(run_dir)
    return read_config(run_dir), load_params(run_dir), read_metrics(run_dir)


def metrics_equal(first: Mapping[str, float], second: Mapping[str, float]) -> bool:
    """Same keys and the same values, NaN equal to NaN."""
    if set(first) != set(second):
        return False
    return all(
        first[key] == second[key]
        or (
            isinstance(first[key], float)
            and isinstance(second[key], float)
            and math.isnan(first[key])
            and math.isnan(second[key])
        )
        for key in first
    )


__all__ = [
    "flatten_params",
    "history_columns",
    "history_text",
    "load_params",
    "metrics_equal",
    "read_archive",
    "read_config",
    "read_history",
    "read_metrics",
    "read_model_spec",
    "read_run",
    "save_params",
    "unflatten_params",
    "write_config",
    "write_history",
    "write_metrics",
    "write_model_spec",
]
