"""Ctrl-C and SIGTERM at random moments of real ``expfam train`` and ``expfam evaluate`` processes.

Each process gets one signal after a seeded random delay, counted from the moment its handlers
are set (read from ``/proc/PID/status``; before that the operating system's default applies),
so the delays cover the imports, the data, compilation, the first chunk, evaluation and the
plots. Every interrupted process must end with exit status 130, exactly one ``interrupted:``
line, no traceback and no crash; an interrupted run folder must be resumable. The count is
``EXPFAM_INTERRUPT_COUNT`` (default 10; the issue's acceptance run used 30).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expfam.experiment.runs.checkpoints import checkpoint_step
from expfam.experiment.runs.layout import COMPLETED, INTERRUPTED, run_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks from /proc (Linux)"),
]

COUNT = int(os.environ.get("EXPFAM_INTERRUPT_COUNT", "10"))
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handled(pid: int) -> bool:
    """Whether ``pid`` catches SIGTERM (bit 15 of SigCgt): Python itself never does, expfam's handler does."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def _run(args: list[str], sig: int | None = None, delay: float = 0.0, limit: float = 300.0) -> tuple[int, str, float]:
    """Run ``python -m expfam ARGS``; ``delay`` s after its handlers are set send it ``sig``.

    Returns ``(exit status, stderr, seconds from the handlers to the exit)``; stopped by its id.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-m", "expfam", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + limit
        while not _handled(process.pid) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        ready = time.monotonic()
        if sig is not None:
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(sig)
        _, stderr = process.communicate(timeout=limit)
        return process.returncode, stderr, time.monotonic() - ready
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _check_interrupted(code: int, stderr: str) -> None:
    """Exit 130, exactly one ``interrupted:`` line, no traceback (and so no crash: 139 or -11 fail here)."""
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert code == 130, (code, stderr[-3000:])
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert "Fatal Python error" not in stderr, stderr[-3000:]


def test_signals_at_random_moments_of_train_and_evaluate_end_with_130_one_line_and_a_resumable_run(
    tiny_run_toml, tmp_path
):
    toml = tmp_path / "run.toml"
    toml.write_text(tiny_run_toml.read_text().replace("n_steps = 4", "n_steps = 6"))
    # reference processes: how long a whole train and a whole evaluate take here, from the handlers on
    reference = tmp_path / "reference"
    code, stderr, train_seconds = _run(["train", "--config", str(toml), "--out", str(reference)])
    assert code == 0 and run_status(reference) == COMPLETED, stderr
    code, stderr, evaluate_seconds = _run(["evaluate", str(reference)])
    assert code == 0, stderr

    rng = random.Random(25)
    interrupted: list[Path] = []
    hits = 0
    for index in range(COUNT):
        sig = SIGNALS[index % 2]
        if index % 3 == 2:  # a third of them: evaluate
            delay = rng.uniform(0.0, 0.9 * evaluate_seconds)
            code, stderr, _ = _run(["evaluate", str(reference)], sig, delay)
            if code == 0:  # it finished before the signal
                assert "interrupted:" not in stderr, stderr
                continue
            _check_interrupted(code, stderr)
            assert stderr.strip().splitlines()[-1] == "interrupted: nothing was written", stderr
            print(f"evaluate {sig.name} after {delay:.2f} s: {code}")
            hits += 1
            continue
        out = tmp_path / f"run{index}"
        delay = rng.uniform(0.0, 0.9 * train_seconds)
        code, stderr, _ = _run(["train", "--config", str(toml), "--out", str(out)], sig, delay)
        if code == 0:  # it finished before the signal
            assert run_status(out) == COMPLETED and "interrupted:" not in stderr, stderr
            continue
        _check_interrupted(code, stderr)
        hits += 1
        lines = stderr.strip().splitlines()
        last = lines[-1]
        before = lines[-3][:40] if len(lines) >= 3 else ""
        print(f"train {sig.name} after {delay:.2f} s: {code}, after {before!r}: {last[:70]}")
        if not out.exists() or not any(out.iterdir()):  # stopped before the run folder was written
            assert last == "interrupted: nothing was written", (delay, stderr[-2000:])
            continue
        status = run_status(out)
        if status == COMPLETED:  # the signal came after the run's last safe point
            assert "had completed before the signal" in last, last
            continue
        assert status == INTERRUPTED, (delay, status, stderr[-2000:])
        step = checkpoint_step(out)
        assert step is not None and 0 <= step <= 6, (delay, step)
        assert f"--resume {out}`" in last and f"(step {step})" in last, last
        interrupted.append(out)
    assert hits >= COUNT // 2, f"only {hits} of {COUNT} signals arrived before the process ended"
    # resumable: the first two interrupted folders finish with --resume, with the uninterrupted run's numbers
    assert interrupted, "no train process was interrupted after its run folder was written"
    reference_metrics = (reference / "metrics.json").read_text()
    for out in interrupted[:2]:
        code, stderr, _ = _run(["train", "--resume", str(out)])
        assert code == 0 and run_status(out) == COMPLETED, stderr[-3000:]
        assert (out / "metrics.json").read_text() == reference_metrics
        shutil.rmtree(out)
