"""Reference step vs hierarchical vs full, timed interleaved in one process.

On a shared machine, two scripts run one after the other see different loads.
This script loads the yardstick (``../shared/bench/reference_step.py`` by default;
it runs its own timing once on load) and then times one scanned chunk of each of
the three steps in turn, ``--rounds`` times, so each round's three figures share
the same load. It prints the median seconds per step (wall clock and process CPU
time) and the median of the per-round ratios.

    python benchmarks/compare_reference.py [--reference PATH] [--rounds 7] [--chunk 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from step_time import SEED_SHAPES, SEED_TRAIN, make_runner

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference_step.py"


def reference_runner(path: Path) -> Callable[[], None]:
    """One 20-step chunk of the yardstick, continuing from its own final state."""
    sys_argv = sys.argv
    sys.argv = [str(path)]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            names = runpy.run_path(str(path))
    finally:
        sys.argv = sys_argv
    state = {"p": names["p"], "s": names["s"], "key": names["key"], "step": 200}

    def run() -> None:
        state["p"], state["s"], state["key"] = names["chunk"](
            state["p"], state["s"], state["key"], names["data"], state["step"]
        )
        state["step"] += 20
        jax.block_until_ready(state["p"])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=10)
    args = parser.parse_args()
    runners = {
        "reference": (reference_runner(args.reference), 20),
        "hierarchical": (make_runner("hierarchical", args.chunk, dict(SEED_SHAPES), dict(SEED_TRAIN)), args.chunk),
        "full": (make_runner("full", args.chunk, dict(SEED_SHAPES), dict(SEED_TRAIN)), args.chunk),
    }
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, (run, steps) in runners.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {args.rounds} interleaved rounds")
    print(f"{'step':<14}{'wall s/step':>13}{'cpu s/step':>12}")
    for name in runners:
        print(f"{name:<14}{np.median(wall[name]):>13.4f}{np.median(cpu[name]):>12.4f}")
    for label, series in (("wall", wall), ("cpu", cpu)):
        hier_ref = np.median(np.array(series["hierarchical"]) / np.array(series["reference"]))
        full_hier = np.median(np.array(series["full"]) / np.array(series["hierarchical"]))
        print(f"{label}: hierarchical / reference = {hier_ref:.2f}, full / hierarchical = {full_hier:.2f}")


if __name__ == "__main__":
    main()
