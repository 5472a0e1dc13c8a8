"""The same digits sweep on this machine's processes and on a Dask cluster of separate processes, in one run.

An 8-trial (``--trials``) single-shape digits sweep (the shapes of ``sweep_throughput.py``'s sweep: the
scaled-down sweep's H1 and one-knob variants), one trial per unit (``--no-stack``; ``--stack`` for the
default stacking), run twice into fresh folders:

- ``expfam sweep --executor local --jobs W`` (W = ``--workers``, default 2: W spawned processes);
- ``expfam sweep --executor dask --scheduler ADDRESS`` against a ``dask scheduler`` and W ``dask worker``
  processes (one thread each, no nanny) started on 127.0.0.1 by this script before the timing starts, and
  stopped by their ids at the end.

Each wall time is the whole ``expfam sweep`` command (start-up, compile, train, evaluate, write); neither
run uses a persistent compilation cache unless the environment sets one (``JAX_COMPILATION_CACHE_DIR``).
Prints both wall times and ends with the JSON line
``{"local_s": ..., "dask_s": ..., "dask_over_local": ..., "trials": ..., "workers": ..., "steps": ...}``.

    python benchmarks/sweep_cluster.py [--trials 8] [--steps 1500] [--workers 2] [--stack]

Needs ``expfam[dask]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_TEXT = """
title = "{trials} trials of one shape (cluster benchmark)"
prefix = "H"
[base.model]
n_latent = 32
n_clusters = 30
[base.train]
cluster_init = "random"
learning_rate = 3e-3
lr_warmup_steps = 100
n_steps = {steps}
batch_size = 128
kl_warmup_steps = {kl}
conj_warmup_steps = {conj}
entropy_weight = 5.0
posterior_entropy_weight = 10.0
n_mc_samples = 5
n_conj_samples = 512
log_every = {log}
[base.evaluate]
n_r2_samples = 2000
n_iwae_samples = 20
[[phases]]
name = "One shape"
grid = {{learning_rate = {rates}}}
"""


def sweep_file(folder: Path, trials: int, steps: int) -> Path:
    """The benchmark's sweep: `trials` learning rates around the H1 baseline's, one shape."""
    rates = [round(3e-3 * (0.8 + 0.4 * k / max(1, trials - 1)), 6) for k in range(trials)]
    path = folder / "sweep.toml"
    text = SWEEP_TEXT.format(
        trials=trials,
        steps=steps,
        kl=max(1, steps * 2 // 5),
        conj=max(1, steps // 10),
        log=max(1, steps // 5),
        rates=json.dumps(rates),
    )
    path.write_text(text, encoding="utf-8")
    return path


def timed_sweep(file: Path, out: Path, *options: str) -> float:
    """Wall seconds of one `expfam sweep` command; its output goes to `out`.log."""
    command = [sys.executable, "-m", "expfam", "sweep", str(file), "--out", str(out), "--no-run-plots", *options]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    with (out.parent / f"{out.name}.log").open("w", encoding="utf-8") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        tail = (out.parent / f"{out.name}.log").read_text(encoding="utf-8")[-2000:]
        raise SystemExit(f"error: `{' '.join(command)}` exited {code}:\n{tail}")
    return seconds


def start_cluster(folder: Path, workers: int, processes: list[subprocess.Popen[bytes]]) -> str:
    """Start a scheduler and `workers` one-thread workers on 127.0.0.1; their address, once all have joined."""
    from distributed import Client

    address_file = folder / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    log = (folder / "cluster.log").open("wb")
    scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    processes.append(subprocess.Popen([*scheduler, "--scheduler-file", str(address_file)], stdout=log, stderr=log))
    deadline = time.monotonic() + 120
    address = ""
    while not address:
        if time.monotonic() > deadline:
            raise SystemExit("error: the dask scheduler did not start in 120 s (see cluster.log)")
        try:
            address = json.loads(address_file.read_text(encoding="utf-8"))["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    for number in range(workers):
        worker = [*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{number}"]
        processes.append(subprocess.Popen(worker, stdout=log, stderr=log))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=300)
    return str(address)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep both ways and print the wall times and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials of the sweep")
    parser.add_argument("--steps", type=int, default=1500, help="steps per trial")
    parser.add_argument("--workers", type=int, default=2, help="local --jobs, and dask workers")
    parser.add_argument(
        "--stack", action="store_true", help="stack the trials (the default sweep) instead of --no-stack"
    )
    args = parser.parse_args(argv)
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("error: this benchmark needs Dask distributed: pip install 'expfam[dask]'", file=sys.stderr)
        return 2
    stacking = [] if args.stack else ["--no-stack"]
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="expfam-sweep-cluster-") as name:
        folder = Path(name)
        file = sweep_file(folder, args.trials, args.steps)
        try:
            local_s = timed_sweep(file, folder / "local", "--executor", "local", "--jobs", str(args.workers), *stacking)
            print(f"local, --jobs {args.workers}: {local_s:.1f} s", flush=True)
            address = start_cluster(folder, args.workers, processes)
            dask_s = timed_sweep(file, folder / "dask", "--executor", "dask", "--scheduler", address, *stacking)
            print(f"dask, {args.workers} workers on {address}: {dask_s:.1f} s", flush=True)
        finally:
            for process in processes:
                process.kill()
            for process in processes:
                process.wait()
    summary = {
        "local_s": round(local_s, 2),
        "dask_s": round(dask_s, 2),
        "dask_over_local": round(dask_s / local_s, 3),
        "trials": args.trials,
        "workers": args.workers,
        "steps": args.steps,
        "stacked": bool(args.stack),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
