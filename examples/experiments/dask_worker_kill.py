"""Issue 29's acceptance run: a 6-trial digits sweep on a Dask scheduler and two `dask worker` processes
(127.0.0.1), one worker killed by SIGKILL while it holds a group; then the same sweep with `--executor local`
and the NMI of every trial side by side. Every process started here is stopped by its id at the end.

usage: python examples/experiments/dask_worker_kill.py [OUTDIR]   (needs expfam[dask])
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import distributed

SWEEP = """title = "Dask kill"
prefix = "H"
[base.model]
n_latent = 4
n_clusters = 3
[base.train]
n_steps = 300
log_every = 100
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64
[[phases]]
name = "Learning rate"
grid = { lr = [2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2] }
"""


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="dask-kill-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.toml").write_text(SWEEP)
    exe, started = sys.executable, []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = (folder / f"{len(started)}.log").open("wb")
        started.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder))
        return started[-1]

    try:
        start(
            exe,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scheduler-file",
            "scheduler.json",
            "--no-dashboard",
        )
        while not (folder / "scheduler.json").is_file():
            time.sleep(0.1)
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        for name in ("wA", "wB"):
            start(
                exe,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
            )
        doomed = started[-1]
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        t0 = time.perf_counter()
        sweep = subprocess.Popen(
            [
                exe,
                "-m",
                "expfam",
                "sweep",
                "sweep.toml",
                "--out",
                "dask",
                "--no-stack",
                "--executor",
                "dask",
                "--scheduler",
                address,
            ],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with distributed.Client(address, timeout=60) as observer:
            while sweep.poll() is None:
                workers = observer.scheduler_info()["workers"]
                if any(info["name"] == "wB" and observer.processing().get(addr) for addr, info in workers.items()):
                    time.sleep(2.0)  # mid-group
                    doomed.send_signal(signal.SIGKILL)
                    print(f"killed worker wB (SIGKILL) {time.perf_counter() - t0:.1f} s into the sweep")
                    break
                time.sleep(0.05)
        stdout, _ = sweep.communicate()
        print(stdout)
        print(f"dask sweep: exit {sweep.returncode}")
        local = subprocess.run(
            [exe, "-m", "expfam", "sweep", "sweep.toml", "--out", "local", "--no-stack", "--executor", "local"],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        print(f"local sweep: exit {local.returncode}")
        print("trial  NMI (dask, one worker killed)  NMI (local)")
        same = 0
        for k in range(1, 7):
            ours = json.loads((folder / "dask" / f"H{k}" / "metrics.json").read_text())["nmi"]
            theirs = json.loads((folder / "local" / f"H{k}" / "metrics.json").read_text())["nmi"]
            print(
                f"H{k}     {ours:.6f}                      {theirs:.6f}   {'same' if ours == theirs else 'DIFFERENT'}"
            )
            same += ours == theirs
        print(
            json.dumps({"trials": 6, "dask_exit": sweep.returncode, "local_exit": local.returncode, "same_nmi": same})
        )
    finally:
        for process in started:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
