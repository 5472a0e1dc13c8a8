"""Fault injection: kill real ``expfam`` processes at chosen and random moments, then check that no
run reads as finished unless it is, and that a resumed sweep repairs every unfinished trial.

The moments: while a plot is written (SIGINT, like Ctrl-C), while a checkpoint is written
(SIGKILL), at a random time (SIGKILL). ``EXPFAM_TEST_WRITE_DELAY`` (test-only, see
:mod:`expfam.experiment.runs`) holds every file write open for a moment, so the killer can see a
write in progress (its temporary file) and strike inside it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from expfam.experiment.config import config_to_toml, load_config
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.compare import read_run_summary
from expfam.experiment.runs.files import read_run
from expfam.experiment.runs.layout import CONFIG_FILE, METRICS_FILE, MODEL_FILE, PARAMS_FILE, PLOT_FILES, is_finished
from expfam.experiment.runs.trained import load_run
from expfam.experiment.sweeps.report import RESULTS_FILE
from expfam.experiment.sweeps.spec import load_sweep

pytestmark = pytest.mark.slow

TRIALS = ("T1", "T2")


def _sweep_file(tiny_run_toml: Path, folder: Path) -> Path:
    """Two trials (seeds 1 and 2) of the tiny run, with a checkpoint after every chunk of one step."""
    lines = []
    for line in tiny_run_toml.read_text().splitlines():
        line = line.replace("log_every = 2", "log_every = 1")
        lines.append(line.replace("[", "[base.", 1) if line.startswith("[") else line)
    path = folder / "sweep.toml"
    path.write_text("\n".join(lines) + '\n\n[[phases]]\nname = "P"\ngrid = { seed = [1, 2] }\n')
    return path


def _start(args: list[str], delay: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "EXPFAM_TEST_WRITE_DELAY": str(delay),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cli.app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the signal reaches it as Ctrl-C would
    )


def _writing(folder: Path, names: tuple[str, ...]) -> Callable[[], bool]:
    """True while a temporary file of one of ``names`` exists under ``folder`` (a write in progress)."""

    def check() -> bool:
        return any(path.name.startswith(tuple(f".{name}." for name in names)) for path in folder.rglob("*.tmp"))

    return check


def _kill_when(process: subprocess.Popen[str], moment: Callable[[], bool], sig: int, limit: float = 240.0):
    """Send ``sig`` to the process group as soon as ``moment()`` holds; return ``(exit code, stderr, hit)``."""
    deadline = time.monotonic() + limit
    hit = False
    while process.poll() is None and time.monotonic() < deadline:
        if moment():
            os.killpg(process.pid, sig)
            hit = True
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=limit)
    return process.returncode, stderr, hit


def _check_runs(folder: Path) -> list[str]:
    """Every finished run is complete and readable; every other one is refused by the readers. Returns the finished."""
    finished = []
    for run in sorted(p for p in folder.iterdir() if p.is_dir() and (p / CONFIG_FILE).exists()):
        if is_finished(run):
            missing = [
                n for n in (CONFIG_FILE, PARAMS_FILE, METRICS_FILE, MODEL_FILE, *PLOT_FILES) if not (run / n).is_file()
            ]
            assert not missing, (run, missing)
            config, params, metrics = read_run(run)
            assert metrics is not None and params and load_run(run).model.n_clusters == config.model.n_clusters
            assert read_run_summary(run).metrics == metrics
            finished.append(run.name)
        else:
            with pytest.raises(RunDirectoryError, match="not finished"):
                read_run_summary(run)
            with pytest.raises(RunDirectoryError, match="not finished"):
                load_run(run)
    return finished


def test_kills_at_any_moment_leave_no_run_that_looks_finished_and_a_resumed_sweep_repairs_them(tiny_run_toml, tmp_path):
    sweep = _sweep_file(tiny_run_toml, tmp_path)
    out = tmp_path / "sweep"
    out.mkdir()
    first = load_sweep(sweep).trials[0]
    trial_config = tmp_path / "T1.toml"
    trial_config.write_text(config_to_toml(first.config))
    assert load_config(trial_config) == first.config

    # 1. `expfam train` interrupted (SIGINT) while it writes a plot: exit 130, one line saying what was kept
    process = _start(["train", "--config", str(trial_config), "--out", str(out / "T1")], delay=0.3)
    code, stderr, hit = _kill_when(process, _writing(out, PLOT_FILES), signal.SIGINT)
    assert hit, stderr
    assert code == 130 and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: kept") and f"--resume {out / 'T1'}" in last, last
    assert (out / "T1" / METRICS_FILE).is_file() and _check_runs(out) == []  # metrics written, yet unfinished

    # 2. the sweep killed (SIGKILL) while a checkpoint is written (the first trial is trained again)
    process = _start(["sweep", str(sweep), "--out", str(out)], delay=0.3)
    code, stderr, hit = _kill_when(process, _writing(out, ("checkpoint.npz",)), signal.SIGKILL)
    assert hit and code == -signal.SIGKILL, stderr
    _check_runs(out)

    # 3. the sweep killed (SIGKILL) at a random moment
    wait = random.Random(11).uniform(2.0, 25.0)
    started = time.monotonic()
    process = _start(["sweep", str(sweep), "--out", str(out)], delay=0.1)
    code, stderr, hit = _kill_when(process, lambda: time.monotonic() - started > wait, signal.SIGKILL)
    _check_runs(out)

    # 4. rerun to the end: every trial finished, complete and readable; the report lists both
    process = _start(["sweep", str(sweep), "--out", str(out)], delay=0.0)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert _check_runs(out) == list(TRIALS)
    rows = (out / RESULTS_FILE).read_text().splitlines()
    assert all(any(row.startswith(f"{name},") or f",{name}," in row for row in rows) for name in TRIALS), rows


def test_ctrl_c_on_a_parallel_sweep_prints_no_worker_traceback(tiny_run_toml, tmp_path):
    sweep = _sweep_file(tiny_run_toml, tmp_path)
    out = tmp_path / "sweep"
    process = _start(["sweep", str(sweep), "--out", str(out), "--jobs", "2", "--no-run-plots"], delay=0.3)

    def both_training() -> bool:
        return all((out / name / "history.csv").is_file() for name in TRIALS)

    code, stderr, hit = _kill_when(process, both_training, signal.SIGINT)
    assert hit, stderr
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished trials are kept")
    assert _check_runs(out) == []
