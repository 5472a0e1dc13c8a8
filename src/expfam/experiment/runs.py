r"""Run directories: what one training run leaves on disk, written atomically.

A run directory holds:

```text
config.toml       the full RunConfig (every key), readable by `expfam train --config`
run.json          status ("running", "completed", "diverged", "interrupted", "failed"), steps, timing, ...
model.json        what rebuilding the model needs without the data: names, options, sizes, image shape
checkpoint.npz    parameters, optimiser state, step and key of the last checkpoint (resume)
history.csv       one row per logged chunk: step, the chunk mean of every loss term, nmi, r2
params.npz        the parameter pytree, one array per '/'-joined path ("likelihood/blocks/xy")
metrics.json      the final evaluation on the test split (absent if training diverged)
prototypes.png, samples.png, reconstructions.png, training_curves.png
```

Every file is written to a temporary file in the same directory and moved into
place with `os.replace`, so a reader (or a crash) never sees half a file.

A run is finished only when `run.json` says `"completed"`; that status is
written last, after the metrics, parameters and plots. [`is_finished`][expfam.experiment.runs.is_finished] is the
one rule every reader uses (`expfam sweep`, `compare`, `evaluate`, `assign`);
[`require_finished`][expfam.experiment.runs.require_finished] refuses anything else with the reason and the fix.

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

import contextlib
import csv
import errno
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from expfam.errors import ExpfamError, RunWriteError
from expfam.experiment.config import RunConfig, config_to_toml, load_config

CONFIG_FILE = "config.toml"
PARAMS_FILE = "params.npz"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
INFO_FILE = "run.json"
MODEL_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.npz"
PLOT_FILES: tuple[str, ...] = (
    "prototypes.png",
    "samples.png",
    "reconstructions.png",
    "training_curves.png",
    "cluster_usage.png",
)
#: Every file a run writes; `--overwrite` removes exactly these (and nothing else).
RUN_FILES: tuple[str, ...] = (
    CONFIG_FILE,
    PARAMS_FILE,
    METRICS_FILE,
    HISTORY_FILE,
    INFO_FILE,
    MODEL_FILE,
    CHECKPOINT_FILE,
    *PLOT_FILES,
)

_SEPARATOR = "/"

#: `run.json` statuses: written first, then "interrupted", "diverged" or "failed", or — last of all — "completed".
RUNNING, COMPLETED, INTERRUPTED, DIVERGED, FAILED = "running", "completed", "interrupted", "diverged", "failed"


class RunDirectoryError(ExpfamError):
    """A run directory cannot be created, or a file in it is missing or malformed."""


# ----------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    r"""Open a temporary file next to `path`; on success move it onto `path`.

    On an exception the temporary file is removed and `path` is left as it was.

    Args:
        path: the final file.
        mode: `"wb"` or `"w"` (text, UTF-8, `\n` line endings).
    """
    path = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        text = "b" not in mode
        handle = os.fdopen(descriptor, mode, encoding="utf-8", newline="") if text else os.fdopen(descriptor, mode)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _test_write_delay()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise _write_error(path, error) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


#: Test-only: seconds to wait between writing a temporary file and moving it into place, so a
#: fault-injection test can kill a run while it writes (tests/expfam/test_fault_injection.py).
TEST_WRITE_DELAY_VARIABLE = "EXPFAM_TEST_WRITE_DELAY"


def _test_write_delay() -> None:
    delay = os.environ.get(TEST_WRITE_DELAY_VARIABLE)
    if delay:
        time.sleep(float(delay))


#: The advice for a failed write, by errno; other errors get none (no disk-space hint for a broken pipe).
_WRITE_FIXES: dict[int, str] = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free disk space (the disk quota is full)",
    errno.EFBIG: "raise the file size limit",
    errno.EACCES: "fix the folder's permissions",
    errno.EPERM: "fix the folder's permissions",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EISDIR: "a folder is in the way; move it or write somewhere else",
}


def _write_error(path: Path, error: OSError) -> RunWriteError:
    fix = _WRITE_FIXES.get(error.errno or 0)
    return RunWriteError(
        f"cannot write {str(path)!r} ({error.strerror or error})" + (f"; {fix}" if fix else ""),
        offending=str(path),
    )


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


# ----------------------------------------------------------------- directory
def check_writable(folder: str | Path, flag: str) -> None:
    """Create and remove a file in `folder`; refuse a folder where that fails.

    Raises:
        RunDirectoryError: naming the folder, the reason and `flag` (e.g. `--out`) as the fix.
    """
    folder = Path(folder)
    try:
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".expfam-write-check.", suffix=".tmp")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise RunDirectoryError(
            f"cannot write in {str(folder)!r} ({error.strerror or error}); fix its permissions or choose another "
            f"{flag}",
            offending=str(folder),
        ) from None


def _require(run_dir: Path, name: str) -> Path:
    if not run_dir.is_dir():
        raise RunDirectoryError(
            f"run directory {str(run_dir)!r} does not exist; pass the --out folder of a training run",
            offending=str(run_dir),
        )
    file = run_dir / name
    if not file.is_file():
        raise RunDirectoryError(
            f"{str(file)!r} is missing; {str(run_dir)!r} is not a complete run directory "
            f"(expected {CONFIG_FILE}, {PARAMS_FILE}, ...)",
            offending=str(file),
        )
    return file


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
    """The nested dict of [`flatten_params`][expfam.experiment.runs.flatten_params]'s output."""
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
    """Read `run_dir/params.npz` back into the nested dict [`save_params`][expfam.experiment.runs.save_params] was given."""
    path = _require(Path(run_dir), PARAMS_FILE)
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
    return load_config(_require(Path(run_dir), CONFIG_FILE))


def _json_text(mapping: Mapping[str, Any]) -> str:
    return json.dumps(dict(mapping), indent=2, sort_keys=False) + "\n"


def write_metrics(run_dir: str | Path, metrics: Mapping[str, float]) -> Path:
    """Write `run_dir/metrics.json` (NaN is written as the JSON extension `NaN`)."""
    path = Path(run_dir) / METRICS_FILE
    atomic_write_text(path, _json_text({key: _plain(value) for key, value in metrics.items()}))
    return path


def read_metrics(run_dir: str | Path) -> dict[str, float] | None:
    """The final metrics of a run, or `None` when it has none (it diverged or is still running)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    metrics = _read_json(path)
    bad = [key for key, value in metrics.items() if isinstance(value, bool) or not isinstance(value, (int, float))]
    if bad:
        raise RunDirectoryError(
            f"{str(path)!r}: {bad[0]!r} is {type(metrics[bad[0]]).__name__} {metrics[bad[0]]!r}, not a number; "
            "the file was edited or damaged — restore it, or recompute it with `expfam evaluate`",
            offending=bad[0],
        )
    return metrics


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`, or a one-line error (not UTF-8, not JSON, not an object)."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise RunDirectoryError(
            f"{str(path)!r} cannot be read ({error.strerror or error})", offending=str(path)
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirectoryError(
            f"{str(path)!r} is not valid JSON ({error}); the file was edited or damaged", offending=str(path)
        ) from None
    if not isinstance(value, dict):
        raise RunDirectoryError(
            f"{str(path)!r} holds a JSON {type(value).__name__}, expected an object; the file was edited or damaged",
            offending=str(path),
        )
    return value


def write_info(run_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """Write `run_dir/run.json`: status and facts about the run that are not configuration."""
    path = Path(run_dir) / INFO_FILE
    atomic_write_text(path, _json_text({key: _plain(value) for key, value in info.items()}))
    return path


def write_model_spec(run_dir: str | Path, spec: Mapping[str, Any]) -> Path:
    """Write `run_dir/model.json`: what [`expfam.experiment.trained.load_run`][expfam.experiment.trained.load_run] rebuilds the model from."""
    path = Path(run_dir) / MODEL_FILE
    atomic_write_text(path, _json_text({key: _plain(value) for key, value in spec.items()}))
    return path


def read_model_spec(run_dir: str | Path) -> dict[str, Any]:
    """`model.json` of a run.

    Raises:
        RunDirectoryError: the file is missing (a run written before expfam stored it) or not JSON.
    """
    return _read_json(_require(Path(run_dir), MODEL_FILE))


def read_info(run_dir: str | Path) -> dict[str, Any]:
    """`run.json` of a run (empty when absent or unreadable: such a run is not finished)."""
    path = Path(run_dir) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        return _read_json(path)
    except RunDirectoryError:
        return {}


def run_status(run_dir: str | Path) -> str:
    """The `status` of `run_dir/run.json`: `"completed"`, `"running"`, ...; `""` when there is none."""
    status = read_info(run_dir).get("status", "")
    return status if isinstance(status, str) else ""


def is_finished(run_dir: str | Path) -> bool:
    """The one rule for "this run is finished": its `run.json`, written last, says `"completed"`.

    A run killed at any moment (while training, evaluating, plotting or writing a
    checkpoint) reads as unfinished, whatever other files it holds.
    """
    return run_status(run_dir) == COMPLETED


def require_finished(run_dir: str | Path) -> None:
    """Refuse a run directory that [`is_finished`][expfam.experiment.runs.is_finished] does not accept, saying why and what to do.

    Raises:
        RunDirectoryError: the directory is missing, or its status is not `"completed"`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(
            f"run directory {str(run_dir)!r} does not exist; pass the --out folder of a training run",
            offending=str(run_dir),
        )
    status = run_status(run_dir)
    if status == COMPLETED:
        return
    resume = f"continue it with `expfam train --resume {run_dir}`, or train it again with --overwrite"
    reasons = {
        RUNNING: f"its run.json says 'running' (it is still training, or it was killed); {resume}",
        INTERRUPTED: f"it was interrupted; {resume}",
        FAILED: f"it failed (a file could not be written); {resume}",
        DIVERGED: "it diverged; train it again, e.g. with a lower --learning-rate",
        "": f"it has no readable {INFO_FILE} with a status (it never started or the file was damaged); train it again",
    }
    reason = reasons.get(status, f"its run.json says {status!r}; train it again")
    raise RunDirectoryError(f"run {str(run_dir)!r} is not finished: {reason}", offending=str(run_dir))


def _plain(value: Any) -> Any:
    """numpy and jax scalars as Python numbers, so JSON can hold them."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()


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
    value = _plain(value)
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
    "CHECKPOINT_FILE",
    "COMPLETED",
    "CONFIG_FILE",
    "DIVERGED",
    "FAILED",
    "HISTORY_FILE",
    "INFO_FILE",
    "INTERRUPTED",
    "METRICS_FILE",
    "MODEL_FILE",
    "PARAMS_FILE",
    "PLOT_FILES",
    "RUNNING",
    "RUN_FILES",
    "RunDirectoryError",
    "atomic_open",
    "atomic_write_text",
    "check_writable",
    "is_finished",
    "load_params",
    "read_archive",
    "read_config",
    "read_history",
    "read_info",
    "read_metrics",
    "read_model_spec",
    "read_run",
    "require_finished",
    "run_status",
    "save_params",
    "write_config",
    "write_history",
    "write_info",
    "write_metrics",
    "write_model_spec",
]
