r"""Atomic files: every file of a run directory is written to a temporary file and moved into place.

[`atomic_open`][expfam.experiment.runs.atomic.atomic_open] writes a temporary file in the same directory and
moves it onto its name with `os.replace`, so a reader (or a crash) never sees half a file; a failed
write is one [`RunWriteError`][expfam.errors.RunWriteError] naming the file, the reason and the fix.
The JSON helpers read and write the run's JSON objects (`run.json`, `metrics.json`, `model.json`).

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write_text(path, "hello")
    >>> path.read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from expfam.errors import ExpfamError, RunWriteError


class RunDirectoryError(ExpfamError):
    """A run directory cannot be created, or a file in it is missing or malformed."""


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


# ----------------------------------------------------------------- JSON objects
def json_text(mapping: Mapping[str, Any]) -> str:
    """The JSON text of a run file's object: 2-space indent, keys in order, numpy numbers as Python numbers."""
    return json.dumps({key: plain_value(value) for key, value in mapping.items()}, indent=2, sort_keys=False) + "\n"


def read_json(path: Path) -> dict[str, Any]:
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


def plain_value(value: Any) -> Any:
    """numpy and jax scalars as Python numbers, so JSON can hold them."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()


__all__ = [
    "TEST_WRITE_DELAY_VARIABLE",
    "RunDirectoryError",
    "atomic_open",
    "atomic_write_text",
    "check_writable",
    "json_text",
    "plain_value",
    "read_json",
]
