r"""One writer per run directory, and the checks an `--out` folder passes before anything in it changes.

A process that writes a run directory (`expfam train`, `train --resume`, `--overwrite`, a
sweep's trial) holds an exclusive OS lock (`fcntl.flock`) on `<run>/.lock` for the run's
whole life; the file holds the writer's PID. The OS releases the lock when the process ends,
however it ends, so a killed run never leaves a folder locked. A second writer is refused with
one line naming the holder's PID; readers (`evaluate`, `assign`) refuse a folder that is
being written. On a clean end the lock file is removed; a `.lock` left by a killed process is
harmless (it is not a run file, and the next writer takes it over).

[`check_out_dir`][expfam.experiment.runs.lock.check_out_dir] is the whole check of an `--out` folder and writes nothing;
[`clear_run_files`][expfam.experiment.runs.lock.clear_run_files] removes the files a run writes, only after the check passed again
under the lock.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp()) / "run"
    >>> with run_lock(run) as folder:
    ...     (folder / LOCK_FILE).read_text() == str(os.getpid())
    True
    >>> (run / LOCK_FILE).exists()
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from expfam.experiment.runs.atomic import RunDirectoryError, check_writable
from expfam.experiment.runs.layout import INFO_FILE, RUN_FILES

#: The lock file inside a run directory (not a run file: it never makes a folder "not empty").
LOCK_FILE = ".lock"


def run_entries(path: Path) -> list[str]:
    """The names in the folder `path` that count as content: everything but `LOCK_FILE`."""
    return sorted(entry.name for entry in path.iterdir() if entry.name != LOCK_FILE)


def check_out_dir(path: str | Path, overwrite: bool) -> Path:
    """Refuse an `--out` that a run cannot be written into, changing nothing on disk.

    `path` may be missing (it is created later), an empty folder, or — with `overwrite` —
    a folder whose run files (`RUN_FILES`) are each absent or a regular file that can be
    replaced. Anything else where a run file belongs (a folder named `metrics.json`, a
    symbolic link, a device) is refused, and nothing is removed.

    Raises:
        RunDirectoryError: `path` is a file; a non-empty folder without `overwrite`; an
            entry that is not a regular file where a run file belongs; a folder where no file
            can be created; or a missing folder whose nearest existing parent is not a folder.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(
            f"run directory {str(path)!r} exists and is a file, not a directory; choose another --out",
            offending=str(path),
        )
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise RunDirectoryError(
                f"cannot create run directory {str(path)!r}: {str(parent)!r} is a file, not a folder; "
                "choose another --out",
                offending=str(path),
            )
        check_writable(parent, "--out")
        return path
    if run_entries(path):
        if not overwrite:
            raise RunDirectoryError(
                f"run directory {str(path)!r} already exists and is not empty; pass --overwrite to replace "
                "its run files, or choose another --out",
                offending=str(path),
            )
        for name in RUN_FILES:
            entry = path / name
            if (entry.exists() or entry.is_symlink()) and (entry.is_symlink() or not entry.is_file()):
                kind = "a symbolic link" if entry.is_symlink() else ("a folder" if entry.is_dir() else "not a file")
                raise RunDirectoryError(
                    f"{str(entry)!r} is {kind}, where the run writes its {name}; --overwrite replaces only "
                    "regular run files and nothing was removed — move it away or choose another --out",
                    offending=str(entry),
                )
    check_writable(path, "--out")
    return path


def clear_run_files(path: Path) -> None:
    """Remove the run files of `path` (`run.json` first, so the folder never reads finished with a mix).

    Call it only under [`run_lock`][expfam.experiment.runs.lock.run_lock] and after [`check_out_dir`][expfam.experiment.runs.lock.check_out_dir] with `overwrite`;
    anything that is not a run file is left alone.
    """
    for name in (INFO_FILE, *RUN_FILES):
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()


def lock_holder(path: str | Path) -> str | None:
    """The PID written in `path`'s lock file while a live process holds the lock; `None` when free.

    Reads only: a folder without a lock file is free, and no file is created.
    """
    lock = Path(path) / LOCK_FILE
    try:
        descriptor = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(descriptor)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _read_pid(descriptor: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return "unknown"


def in_use_error(path: Path, pid: str) -> RunDirectoryError:
    """The one-line refusal of a folder another process is writing."""
    return RunDirectoryError(
        f"run directory {str(path)!r} is in use by process {pid} (another expfam train, --resume or --overwrite "
        f"writes it); wait for it to end or stop it (kill {pid}), then retry",
        offending=str(path),
    )


def require_unlocked(path: str | Path) -> None:
    """Refuse to read a run directory while another process writes it (`evaluate`, `assign`).

    Raises:
        RunDirectoryError: naming the writer's PID.
    """
    pid = lock_holder(path)
    if pid is not None:
        raise in_use_error(Path(path), pid)


def _try_exclusive(descriptor: int, attempts: int = 20, pause: float = 0.025) -> bool:
    """Take the exclusive lock, retrying for half a second: a reader ([`lock_holder`][expfam.experiment.runs.lock.lock_holder]) holds a
    shared lock for an instant, which must not read as another writer."""
    for attempt in range(attempts):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if attempt + 1 < attempts:
                time.sleep(pause)
    return False


@contextlib.contextmanager
def run_lock(path: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of the run directory `path` (created if missing) while the block runs.

    The lock file gets this process's PID. On leaving the block the lock file is removed and
    the lock released; if the process dies instead, the OS releases it.

    Raises:
        RunDirectoryError: another process holds the lock (naming its PID), or the folder or
            its lock file cannot be created.
    """
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(
            f"cannot create run directory {str(path)!r} ({error.strerror or error}); choose another --out",
            offending=str(path),
        ) from None
    lock = path / LOCK_FILE
    while True:
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunDirectoryError(
                f"cannot create the lock file {str(lock)!r} ({error.strerror or error}); fix the folder's "
                "permissions or choose another --out",
                offending=str(lock),
            ) from None
        if not _try_exclusive(descriptor):
            pid = _read_pid(descriptor)
            os.close(descriptor)
            raise in_use_error(path, pid) from None
        # the holder before us may have removed the file between our open and our lock: retry on the new one
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode("ascii"), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: the next writer opens a new file
        os.close(descriptor)


@contextlib.contextmanager
def writable_run_dir(path: str | Path, overwrite: bool) -> Iterator[Path]:
    """The run directory `path`, checked ([`check_out_dir`][expfam.experiment.runs.lock.check_out_dir]), locked ([`run_lock`][expfam.experiment.runs.lock.run_lock]) and
    emptied of its run files (with `overwrite`), for the block's duration.

    The check runs once before the lock, so a refused folder is left exactly as it was, and
    once under it, since another process may have written there meanwhile.

    Raises:
        RunDirectoryError: from [`check_out_dir`][expfam.experiment.runs.lock.check_out_dir] or [`run_lock`][expfam.experiment.runs.lock.run_lock].
    """
    check_out_dir(path, overwrite)
    with run_lock(path) as folder:
        check_out_dir(folder, overwrite)
        if run_entries(folder):
            clear_run_files(folder)
        yield folder


__all__ = [
    "LOCK_FILE",
    "check_out_dir",
    "clear_run_files",
    "in_use_error",
    "lock_holder",
    "require_unlocked",
    "run_entries",
    "run_lock",
    "writable_run_dir",
]
