"""Regression tests of issue 25, deliverable 2: one writer per run folder.

A run holds an exclusive OS lock (``<run>/.lock``, its PID inside) for its whole life; a second
``train --overwrite``, ``train --resume``, ``evaluate`` or ``assign`` of the same folder is
refused with one line naming that PID, and the lock goes with the process however it ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.lock import LOCK_FILE, check_out_dir, lock_holder, run_entries, run_lock

EXPFAM = [sys.executable, "-m", "expfam"]


def _wait_for_lock(folder: Path, process: subprocess.Popen, timeout: float = 300.0) -> str:
    """Poll until ``process`` holds ``folder``'s lock; its PID as written in the lock file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        holder = lock_holder(folder)
        if holder is not None and holder.isdigit():  # the PID is written just after the lock is taken
            return holder
        time.sleep(0.2)
    raise AssertionError(f"{folder} was not locked within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate()


@pytest.mark.slow  # two real processes, each importing JAX and preparing the run
def test_a_second_writer_is_refused_with_the_holders_pid(
    runner, app, tiny_run_toml, finished_run, tmp_path, snapshot_of
):
    """A long run trains into R; a second --overwrite (a real process), a --resume, evaluate and assign are refused."""
    out = shutil.copytree(finished_run, tmp_path / "r")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["train", "--config", str(tiny_run_toml), "--out", str(out), "--overwrite", "--n-steps", "100000000"]
    first = subprocess.Popen([*EXPFAM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        holder = _wait_for_lock(out, first)
        assert holder == str(first.pid)
        second = subprocess.run([*EXPFAM, *args[:-2]], capture_output=True, text=True, env=env, timeout=300)
        assert second.returncode == 2, (second.returncode, second.stderr)
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), second.stderr
        assert f"in use by process {first.pid}" in lines[0] and f"kill {first.pid}" in lines[0]
        for command in (["train", "--resume", str(out)], ["evaluate", str(out)]):
            result = runner.invoke(app, command)
            assert result.exit_code == 2, (command, result.output)
            assert f"in use by process {first.pid}" in result.stderr.strip().splitlines()[-1]
        assert first.poll() is None  # the first writer goes on
    finally:
        _stop(first)
    assert lock_holder(out) is None  # the OS released the lock of the killed process
    assert (out / LOCK_FILE).read_text() == str(first.pid)  # left by the kill; harmless


def test_the_lock_is_released_and_removed_when_the_block_ends(tmp_path):
    run = tmp_path / "run"
    with run_lock(run) as folder:
        assert lock_holder(folder) == str(os.getpid())  # our own lock, seen through another descriptor
        assert (folder / LOCK_FILE).read_text() == str(os.getpid())
        assert run_entries(folder) == []  # the lock file is not content
        check_out_dir(folder, overwrite=False)  # a locked empty folder is still empty
    assert not (run / LOCK_FILE).exists() and lock_holder(run) is None
    with run_lock(run):  # and it can be taken again
        pass


def test_a_lock_held_by_another_process_refuses_run_lock(tmp_path):
    run = tmp_path / "run"
    code = (
        "import sys, time; from expfam.experiment.runs.lock import run_lock\n"
        f"with run_lock({str(run)!r}):\n    print('locked', flush=True); time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError, match=rf"in use by process {holder.pid}\b"), run_lock(run):
            pass
        assert lock_holder(run) == str(holder.pid)
    finally:
        _stop(holder)
    with run_lock(run):  # a dead holder's lock is free
        pass


def test_a_stale_lock_file_is_neither_content_nor_a_run_file(runner, app, finished_run, tmp_path):
    """A .lock left by a killed run: evaluate reads the run, compare lists it, --out still counts as empty."""
    run = shutil.copytree(finished_run, tmp_path / "run")
    (run / LOCK_FILE).write_text("999999")
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    assert runner.invoke(app, ["compare", str(run)]).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / LOCK_FILE).write_text("999999")
    check_out_dir(empty, overwrite=False)
