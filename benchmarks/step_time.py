"""Median warm training-step time, hierarchical vs full, at the reference MNIST shapes or your own.

Reference shapes (docs/objectives.md): 784 Binomial(16) pixels, n_latent 128, n_clusters 30,
batch 512, 10 Monte-Carlo samples, 1024 conjugation samples. Each block set's step is compiled
once and run once; then the block sets are timed interleaved, one scan chunk of ``--chunk``
steps each per round, ``--repeats`` rounds, so a change in the machine's load hits every block
set alike. A step time is the median over the rounds of chunk time / chunk length, by wall
clock and by process CPU time (the steadier of the two on a shared machine).

``--reference [PATH]`` adds the yardstick (``../shared/bench/reference_step.py`` by default,
a minimal single-function hierarchical step; loading it runs its own timing once) as one more
step in every round, and reports the median of the per-round ratios hierarchical / reference.
The yardstick has fixed shapes (n_latent 128, K 30, batch 512); it is given ``--data-dim``.

Prints the JAX device, a table with the compiled chunk's memory (XLA's buffer assignment:
arguments + outputs + temporaries) and, where the device reports it, its peak memory in use;
the process's peak resident memory; and ends with one JSON line
``{"hierarchical_s": ..., "full_s": ..., "full_over_hierarchical": ..., ...}``.

    python benchmarks/step_time.py [--chunk 10] [--repeats 5] [--reference [PATH]]
        [--batch-size 512] [--n-latent 128] [--n-clusters 30] [--data-dim 784]
        [--blocks hierarchical full]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import resource
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import build_model
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.chunks import make_chunk
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state, step_numbers

SEED_SHAPES = {"data_dim": 784, "n_trials": 16, "n_latent": 128, "n_clusters": 30}
SEED_TRAIN = {"batch_size": 512, "n_mc_samples": 10, "n_conj_samples": 1024, "kl_warmup_steps": 120_000}
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference_step.py"
REFERENCE_CHUNK = 20  # steps per call of the yardstick's compiled chunk


@dataclasses.dataclass
class Runner:
    """One warm, compiled scan chunk: `run()` advances it by `steps` steps.

    `compiled_mb` is the compiled chunk's XLA memory and `program` the compiled executable
    (for its HLO text and cost analysis); both `None` for the yardstick.
    """

    run: Callable[[], None]
    steps: int
    compiled_mb: float | None = None
    program: Any = None


def make_runner(block: str, chunk_length: int, shapes: dict[str, int], train: dict[str, int]) -> Runner:
    """A compiled scan chunk of `chunk_length` steps of one block set, its state carried from call to call."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": shapes["n_trials"]},
        data_dim=shapes["data_dim"],
        n_latent=shapes["n_latent"],
        n_clusters=shapes["n_clusters"],
        blocks=block,
    )
    data = jax.random.binomial(jax.random.PRNGKey(1), shapes["n_trials"], 0.2, (4096, shapes["data_dim"]))
    data = data.astype(jnp.float32)
    config = dataclasses.replace(TrainConfig(), **train)
    chunk = make_chunk(model, config)
    params = model.init(jax.random.PRNGKey(0), data)
    state = initial_state(params, config, make_optimizer(config))
    numbers = step_numbers(config)
    compiled = chunk.lower(state, data, numbers, length=chunk_length).compile()  # the program timed below
    memory = compiled.memory_analysis()
    compiled_mb = None
    if memory is not None:
        compiled_mb = (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes) / 1e6
    holder = {"state": state}

    def run() -> None:
        holder["state"], _ = compiled(holder["state"], data, numbers)
        jax.block_until_ready(holder["state"].params)

    return Runner(run, chunk_length, compiled_mb, compiled)


def reference_runner(path: Path, data_dim: int) -> Runner:
    """One 20-step chunk of the yardstick per call, continuing from the state its own timing left."""
    saved_argv = sys.argv
    sys.argv = [str(path), str(data_dim)]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            names = runpy.run_path(str(path))
    finally:
        sys.argv = saved_argv
    state = {"p": names["p"], "s": names["s"], "key": names["key"], "step": 200}

    def run() -> None:
        state["p"], state["s"], state["key"] = names["chunk"](
            state["p"], state["s"], state["key"], names["data"], state["step"]
        )
        state["step"] += REFERENCE_CHUNK
        jax.block_until_ready(state["p"])

    return Runner(run, REFERENCE_CHUNK)


def device_peak_mb() -> float | None:
    """Peak bytes in use on the default device (GPU), in MB; `None` where not reported (CPU)."""
    stats: Any = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 1e6


def interleaved_times(runners: dict[str, Runner], rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """`(wall, cpu)` seconds per step of every runner in every round, the runners taken in turn."""
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            runner.run()
            wall[name].append((time.perf_counter() - started) / runner.steps)
            cpu[name].append((time.process_time() - started_cpu) / runner.steps)
    return wall, cpu


def ratio(series: dict[str, list[float]], top: str, bottom: str) -> float | None:
    """The median over rounds of `top / bottom`; `None` when either was not timed."""
    if top not in series or bottom not in series:
        return None
    return float(np.median(np.array(series[top]) / np.array(series[bottom])))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed scan chunk")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--batch-size", type=int, default=SEED_TRAIN["batch_size"])
    parser.add_argument("--n-latent", type=int, default=SEED_SHAPES["n_latent"])
    parser.add_argument("--n-clusters", type=int, default=SEED_SHAPES["n_clusters"])
    parser.add_argument("--data-dim", type=int, default=SEED_SHAPES["data_dim"])
    parser.add_argument("--blocks", nargs="+", default=["hierarchical", "full"], help="block sets to time")
    parser.add_argument(
        "--reference",
        type=Path,
        nargs="?",
        const=DEFAULT_REFERENCE,
        default=None,
        metavar="PATH",
        help=f"also time the yardstick step in every round (default path: {DEFAULT_REFERENCE})",
    )
    args = parser.parse_args(argv)
    if args.chunk < 1 or args.repeats < 1:
        parser.error(f"--chunk and --repeats must be at least 1, got {args.chunk} and {args.repeats}")
    if args.reference is not None and not args.reference.is_file():
        parser.error(f"--reference {args.reference}: no such file; pass the yardstick's path (reference_step.py)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shapes = {**SEED_SHAPES, "n_latent": args.n_latent, "n_clusters": args.n_clusters, "data_dim": args.data_dim}
    train = {**SEED_TRAIN, "batch_size": args.batch_size}
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}, {device}), jax {jax.__version__}")
    print(f"shapes: {shapes}, batch {args.batch_size}, {train['n_mc_samples']} MC, {train['n_conj_samples']} conj")
    runners: dict[str, Runner] = {}
    compile_s: dict[str, float] = {}
    peaks: dict[str, float | None] = {}
    if args.reference is not None:
        if (args.batch_size, args.n_latent, args.n_clusters) != (512, 128, 30):
            print("note: the yardstick runs at batch 512, n_latent 128, K 30 whatever these shapes are")
        started = time.perf_counter()
        runners["reference"] = reference_runner(args.reference, args.data_dim)
        compile_s["reference"] = time.perf_counter() - started
        peaks["reference"] = device_peak_mb()
    for block in args.blocks:
        started = time.perf_counter()
        runners[block] = make_runner(block, args.chunk, shapes, train)
        runners[block].run()
        compile_s[block] = time.perf_counter() - started
        peaks[block] = device_peak_mb()
    wall, cpu = interleaved_times(runners, args.repeats)
    results: dict[str, Any] = {}
    print(f"{args.repeats} interleaved rounds")
    print(f"{'step':<14}{'s/step':>10}{'cpu s/step':>12}{'steps/s':>10}{'compile s':>11}{'step MB':>10}{'peak MB':>10}")
    for name, runner in runners.items():
        seconds, cpu_seconds = float(np.median(wall[name])), float(np.median(cpu[name]))
        results[f"{name}_s"], results[f"{name}_cpu_s"] = seconds, cpu_seconds
        if name != "reference":
            results[f"{name}_step_mb"], results[f"{name}_device_peak_mb"] = runner.compiled_mb, peaks[name]
        memory = f"{runner.compiled_mb:>10.0f}" if runner.compiled_mb is not None else f"{'n/a':>10}"
        peak = f"{peaks[name]:>10.0f}" if peaks[name] is not None else f"{'n/a':>10}"
        print(
            f"{name:<14}{seconds:>10.4f}{cpu_seconds:>12.4f}{1 / seconds:>10.1f}{compile_s[name]:>11.1f}{memory}{peak}"
        )
    scale = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, KiB on Linux
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024
    print(f"process peak resident memory: {rss_mb:.0f} MB")
    pairs = [("full", "hierarchical")] + ([("hierarchical", "reference")] if args.reference is not None else [])
    for top, bottom in pairs:
        by_wall, by_cpu = ratio(wall, top, bottom), ratio(cpu, top, bottom)
        results[f"{top}_over_{bottom}"], results[f"{top}_over_{bottom}_cpu"] = by_wall, by_cpu
        if by_wall is not None and by_cpu is not None:
            print(f"{top} / {bottom} = {by_wall:.2f} (wall), {by_cpu:.2f} (cpu); medians of per-round ratios")
    results.update(device=str(device.device_kind), backend=jax.default_backend(), batch_size=args.batch_size)
    results.update(n_latent=args.n_latent, n_clusters=args.n_clusters, data_dim=args.data_dim, peak_rss_mb=rss_mb)
    results.update(chunk=args.chunk, repeats=args.repeats)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
