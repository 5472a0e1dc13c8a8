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
written last, after the metrics, parameters and plots. [`is_finished`][expfam.experiment.runs.layout.is_finished] is the
one rule every reader uses (`expfam sweep`, `compare`, `evaluate`, `assign`);
[`require_finished`][expfam.experiment.runs.layout.require_finished] refuses anything else with the reason and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expfam.experiment.runs.atomic import RunDirectoryError, atomic_write_text, json_text, read_json

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

#: What a sweep writes into a trial's run directory when the trial raised: the error and its traceback.
ERROR_FILE = "error.txt"

#: `run.json` statuses: written first, then "interrupted", "diverged" or "failed", or — last of all — "completed".
RUNNING, COMPLETED, INTERRUPTED, DIVERGED, FAILED = "running", "completed", "interrupted", "diverged", "failed"


def require_file(run_dir: Path, name: str) -> Path:
    """`run_dir / name`, refusing a missing run directory or a missing file.

    Raises:
        RunDirectoryError: naming what is missing and the fix.
    """
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


def write_info(run_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """Write `run_dir/run.json`: status and facts about the run that are not configuration."""
    path = Path(run_dir) / INFO_FILE
    atomic_write_text(path, json_text(info))
    return path


def read_info(run_dir: str | Path) -> dict[str, Any]:
    """`run.json` of a run (empty when absent or unreadable: such a run is not finished)."""
    path = Path(run_dir) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        return read_json(path)
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
    """Refuse a run directory that [`is_finished`][expfam.experiment.runs.layout.is_finished] does not accept, saying why and what to do.

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


__all__ = [
    "CHECKPOINT_FILE",
    "COMPLETED",
    "CONFIG_FILE",
    "DIVERGED",
    "ERROR_FILE",
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
    "is_finished",
    "read_info",
    "require_file",
    "require_finished",
    "run_status",
    "write_info",
]
