"""``expfam sweep --executor dask`` on real Dask processes on 127.0.0.1 (nothing mocked; slow).

Each test starts its own ``dask scheduler`` and ``dask worker`` processes (``--no-nanny``, one
thread each, so a SIGKILL kills the worker itself) and stops every process it started by its id,
pass or fail (the ``processes`` fixture). The workers read the test session's compilation cache
(tests/conftest.py), so only the first group of the session compiles.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip(
    "distributed", reason="the dask executor needs expfam[dask] (pip install 'expfam[dask]')"
)
psutil = pytest.importorskip("psutil", reason="installed with distributed; used to find the local cluster's processes")

from expfam.experiment.runs.layout import INFO_FILE, is_finished  # noqa: E402

pytestmark = pytest.mark.slow

SWEEP = """\
title = "Dask sweep"
prefix = "H"

[base.model]
n_latent = 4
n_clusters = 3

[base.train]
n_steps = {steps}
log_every = 50
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64
kl_warmup_steps = 20
conj_warmup_steps = 10
lr_warmup_steps = 10

[base.evaluate]
n_r2_samples = 200
n_iwae_samples = 5
batch_size = 200

[[phases]]
name = "Learning rate"
grid = {{lr = {rates}}}
"""
#: The columns of results.csv that must agree between executors (all but the timing).
TIMING = {"seconds"}


def _sweep_file(folder: Path, rates: list[float], steps: int = 150) -> Path:
    path = folder / "sweep.toml"
    path.write_text(SWEEP.format(steps=steps, rates=json.dumps(rates)))
    return path


class Processes:
    """Processes a test starts; every one is killed by its id when the test ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        self.started.append(process)
        return process

    def scheduler(self, name: str, *tls: str) -> str:
        """Start `dask scheduler` on 127.0.0.1 (any free port) and return its address."""
        address_file = self.folder / f"{name}.json"
        protocol = ["--protocol", "tls", *tls] if tls else []
        self.start(
            name,
            sys.executable,
            "-m",
            "dask",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(address_file),
            *protocol,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if address_file.is_file():
                try:
                    return str(json.loads(address_file.read_text())["address"])
                except (ValueError, KeyError):  # written but not complete yet
                    pass
            time.sleep(0.1)
        raise AssertionError(f"the scheduler did not start: {(self.folder / f'{name}.log').read_text()[-2000:]}")

    def worker(self, name: str, address: str, *tls: str) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            sys.executable,
            "-m",
            "dask",
            "worker",
            address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--no-nanny",
            "--no-dashboard",
            *tls,
        )

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
        for process in self.started:
            process.wait(timeout=30)


@pytest.fixture()
def processes(tmp_path):
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def _sweep(*args: str, cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "expfam", "sweep", *args, "--no-stack", "--no-run-plots"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)


def _wait_workers(address: str, count: int, *, security=None) -> None:
    with distributed.Client(address, security=security, timeout=60) as client:
        client.wait_for_workers(count, timeout=120)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "results.csv").open(encoding="utf-8") as handle:
        return {row["Run"]: {k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)}


def _metrics(out: Path, name: str) -> dict[str, float]:
    return json.loads((out / name / "metrics.json").read_text())


class Watcher(threading.Thread):
    """Looks at OUT every few milliseconds: a visible run directory must always be a finished run."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out, self.partial, self.stop = out, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.out.is_dir():
                for entry in self.out.iterdir():
                    if entry.is_dir() and entry.name.startswith("H") and not is_finished(entry):
                        self.partial.append(sorted(p.name for p in entry.iterdir()) if entry.exists() else "gone")
            time.sleep(0.005)


def test_a_killed_worker_loses_nothing_and_the_trials_match_the_local_executor(processes, tmp_path):
    rates = [3e-3, 1e-2, 2e-2, 5e-3]
    sweep_file = _sweep_file(tmp_path, rates)
    address = processes.scheduler("scheduler")
    processes.worker("wA", address)
    doomed = processes.worker("wB", address)
    _wait_workers(address, 2)
    out = tmp_path / "dask"
    watcher = Watcher(out)
    watcher.start()
    sweep = _sweep(str(sweep_file), "--out", str(out), "--executor", "dask", "--scheduler", address, cwd=tmp_path)
    try:
        with distributed.Client(address, timeout=60) as observer:  # kill wB while it holds a group
            deadline, held = time.monotonic() + 300, {}
            while time.monotonic() < deadline and sweep.poll() is None:
                workers = observer.scheduler_info()["workers"]
                held = {info["name"]: observer.processing().get(addr, ()) for addr, info in workers.items()}
                if held.get("wB"):
                    break
                time.sleep(0.05)
            assert held.get("wB"), "wB never held a group"
            doomed.send_signal(signal.SIGKILL)
        stdout, stderr = sweep.communicate(timeout=600)
    finally:
        watcher.stop.set()
        watcher.join()
    assert sweep.returncode == 0, stderr[-3000:]
    assert doomed.wait(timeout=30) == -signal.SIGKILL
    assert watcher.partial == [], watcher.partial  # no half-written run directory was ever visible
    names = [f"H{k}" for k in range(1, len(rates) + 1)]
    for name in names:  # each trial completed exactly once, and finished on disk
        assert stdout.count(f"{name} finished in ") == 1, stdout
        assert is_finished(out / name)
    assert "trials per worker: " in stdout and "sweep wall time" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")], list(out.iterdir())  # no staging left

    local = tmp_path / "local"  # a separate process, as the workers are (this test session computes in float64)
    result = _sweep(str(sweep_file), "--out", str(local), "--executor", "local", cwd=tmp_path)
    assert result.wait(timeout=600) == 0, result.communicate()[1][-3000:]
    assert _rows(out) == _rows(local)
    for name in names:
        ours, theirs = _metrics(out, name), _metrics(local, name)
        assert ours.keys() == theirs.keys()
        assert all(ours[k] == pytest.approx(theirs[k], rel=1e-9, abs=1e-12) for k in ours), (name, ours, theirs)


def _tls_files(folder: Path) -> list[str]:
    """A self-signed certificate that serves as CA, scheduler, worker and client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS test makes its certificate with the openssl command, which is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=expfam-test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return ["--tls-ca-file", str(cert), "--tls-cert", str(cert), "--tls-key", str(key)]


def test_a_lost_scheduler_is_one_error_line_and_a_rerun_on_a_new_tls_scheduler_trains_only_the_rest(
    processes, tmp_path
):
    sweep_file = _sweep_file(tmp_path, [3e-3, 1e-2, 2e-2], steps=400)
    address = processes.scheduler("first")
    first = processes.started[-1]
    processes.worker("w1", address)
    _wait_workers(address, 1)
    out = tmp_path / "out"
    sweep = _sweep(str(sweep_file), "--out", str(out), "--executor", "dask", "--scheduler", address, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and sweep.poll() is None and not is_finished(out / "H1"):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    stdout, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, (stdout, stderr[-3000:])
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the Dask scheduler" in errors[0] and "rerun" in errors[0], stderr[-3000:]
    done = [name for name in ("H1", "H2", "H3") if is_finished(out / name)]
    assert done and len(done) < 3, stdout
    stamps = {name: (out / name / INFO_FILE).stat().st_mtime_ns for name in done}

    tls = _tls_files(tmp_path)
    second = processes.scheduler("second", *tls)
    assert second.startswith("tls://")
    processes.worker("w2", second, *tls)
    again = _sweep(str(sweep_file), "--out", str(out), "--executor", "dask", "--scheduler", second, *tls, cwd=tmp_path)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    for name in done:  # read back, not retrained
        assert f"{name} already finished" in stdout and (out / name / INFO_FILE).stat().st_mtime_ns == stamps[name]
    for name in {"H1", "H2", "H3"} - set(done):
        assert is_finished(out / name) and f"{name} done on worker w2" in stdout


def test_ctrl_c_cancels_the_local_cluster_exits_130_and_keeps_finished_trials(tmp_path):
    sweep_file = _sweep_file(tmp_path, [3e-3, 1e-2, 2e-2, 5e-3], steps=400)
    out = tmp_path / "out"
    sweep = _sweep(str(sweep_file), "--out", str(out), "--executor", "dask", "--jobs", "1", cwd=tmp_path)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sweep.poll() is None and not is_finished(out / "H1"):
            children |= {child.pid for child in psutil.Process(sweep.pid).children(recursive=True)}
            time.sleep(0.05)
        assert children, "the local cluster started no process"
        sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 130, (stdout, stderr[-3000:])
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished trials are kept")
    assert is_finished(out / "H1") and not is_finished(out / "H4")
    deadline = time.monotonic() + 30  # the cluster's workers, with their cancelled groups, are gone
    while time.monotonic() < deadline and [pid for pid in children if psutil.pid_exists(pid)]:
        time.sleep(0.2)
    alive = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    for pid in alive:  # stopped by their ids whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not alive
