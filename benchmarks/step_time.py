"""Median warm training-step time, hierarchical vs full, at the reference MNIST shapes or your own.

Reference shapes (docs/objectives.md): 784 Binomial(16) pixels, n_latent 128, n_clusters 30,
batch 512, 10 Monte-Carlo samples, 1024 conjugation samples. Each block set's
step is compiled once, then timed as ``--repeats`` scan chunks of ``--chunk``
steps; the median chunk time divided by the chunk length is the step time.
Prints the JAX device, a table with the compiled step's memory (XLA's buffer
assignment: arguments + outputs + temporaries of one chunk) and, where the
device reports it, its peak memory in use; the process's peak resident memory;
and ends with one JSON line ``{"hierarchical_s": ..., "full_s": ..., ...}``.

    python benchmarks/step_time.py [--chunk 10] [--repeats 5]
        [--batch-size 512] [--n-latent 128] [--n-clusters 30] [--data-dim 784]
        [--blocks hierarchical full]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from collections.abc import Callable
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
LAST_MEMORY: dict[str, float] = {}


def make_runner(block: str, chunk_length: int, shapes: dict[str, int], train: dict[str, int]) -> Callable[[], None]:
    """A callable running one warm, compiled scan chunk of ``chunk_length`` steps (state carried over)."""
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
    memory = chunk.lower(state, data, step_numbers(config), length=chunk_length).compile().memory_analysis()
    if memory is not None:
        LAST_MEMORY["compiled_mb"] = (
            memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
        ) / 1e6
    holder = {"state": state}

    def run() -> None:
        holder["state"], _ = chunk(holder["state"], data, step_numbers(config), length=chunk_length)
        jax.block_until_ready(holder["state"].params)

    return run


def time_block_set(
    block: str, chunk_length: int, repeats: int, shapes: dict[str, int], train: dict[str, int]
) -> tuple[float, float]:
    """``(median seconds per step, compile seconds)`` for one block set."""
    start = time.perf_counter()
    run = make_runner(block, chunk_length, shapes, train)
    run()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / chunk_length)
    return float(np.median(times)), compile_s


def device_peak_mb() -> float | None:
    """Peak bytes in use on the default device (GPU), in MB; ``None`` where not reported (CPU)."""
    stats: Any = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed scan chunk")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per block set")
    parser.add_argument("--batch-size", type=int, default=SEED_TRAIN["batch_size"])
    parser.add_argument("--n-latent", type=int, default=SEED_SHAPES["n_latent"])
    parser.add_argument("--n-clusters", type=int, default=SEED_SHAPES["n_clusters"])
    parser.add_argument("--data-dim", type=int, default=SEED_SHAPES["data_dim"])
    parser.add_argument("--blocks", nargs="+", default=["hierarchical", "full"], help="block sets to time")
    args = parser.parse_args()
    shapes = {**SEED_SHAPES, "n_latent": args.n_latent, "n_clusters": args.n_clusters, "data_dim": args.data_dim}
    train = {**SEED_TRAIN, "batch_size": args.batch_size}
    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}, {device}), jax {jax.__version__}")
    print(f"shapes: {shapes}, batch {args.batch_size}, {train['n_mc_samples']} MC, {train['n_conj_samples']} conj")
    results: dict[str, Any] = {}
    print(f"{'block set':<14}{'s/step':>10}{'steps/s':>10}{'compile s':>11}{'step MB':>10}{'peak MB':>10}")
    for block in args.blocks:
        seconds, compile_s = time_block_set(block, args.chunk, args.repeats, shapes, train)
        peak = device_peak_mb()
        results[f"{block}_s"] = seconds
        results[f"{block}_step_mb"] = LAST_MEMORY.get("compiled_mb")
        results[f"{block}_device_peak_mb"] = peak
        peak_text = f"{peak:>10.0f}" if peak is not None else f"{'n/a':>10}"
        print(
            f"{block:<14}{seconds:>10.4f}{1.0 / seconds:>10.1f}{compile_s:>11.1f}"
            f"{LAST_MEMORY.get('compiled_mb', float('nan')):>10.0f}{peak_text}"
        )
    scale = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, KiB on Linux
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024
    print(f"process peak resident memory: {rss_mb:.0f} MB")
    if "hierarchical_s" in results and "full_s" in results:
        print(f"full / hierarchical = {results['full_s'] / results['hierarchical_s']:.2f}")
    results.update(device=str(device.device_kind), backend=jax.default_backend(), batch_size=args.batch_size)
    results.update(n_latent=args.n_latent, n_clusters=args.n_clusters, data_dim=args.data_dim, peak_rss_mb=rss_mb)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
