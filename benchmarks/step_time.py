"""Median warm training-step time at the reference MNIST configuration, hierarchical vs full.

Shapes (docs/objectives.md): 784 Binomial(16) pixels, n_latent 128, n_clusters 30,
batch 512, 10 Monte-Carlo samples, 1024 conjugation samples. Each block set's
step is compiled once, then timed as ``--repeats`` scan chunks of
``--chunk`` steps; the median chunk time divided by the chunk length is the
step time. Prints a table and ends with one JSON line
``{"hierarchical_s": ..., "full_s": ...}``.

    python benchmarks/step_time.py [--chunk 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import build_model
from expfam.experiment.config import TrainConfig
from expfam.experiment.training import TrainState, make_chunk, make_optimizer

SEED_SHAPES = {"data_dim": 784, "n_trials": 16, "n_latent": 128, "n_clusters": 30}
SEED_TRAIN = {"batch_size": 512, "n_mc_samples": 10, "n_conj_samples": 1024, "kl_warmup_steps": 120_000}


def time_block_set(block: str, chunk_length: int, repeats: int) -> tuple[float, float]:
    """``(median seconds per step, compile seconds)`` for one block set."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": SEED_SHAPES["n_trials"]},
        data_dim=SEED_SHAPES["data_dim"],
        n_latent=SEED_SHAPES["n_latent"],
        n_clusters=SEED_SHAPES["n_clusters"],
        blocks=block,
    )
    data = jax.random.binomial(jax.random.PRNGKey(1), 16, 0.2, (4096, SEED_SHAPES["data_dim"])).astype(jnp.float32)
    config = dataclasses.replace(TrainConfig(), **SEED_TRAIN)
    optimizer = make_optimizer(config)
    chunk = make_chunk(model, config)
    params = model.init(jax.random.PRNGKey(0), data)
    state = TrainState(
        params, optimizer.init(params), jnp.zeros((), jnp.int32), jax.random.PRNGKey(2), -jnp.ones((), jnp.int32)
    )
    start = time.perf_counter()
    state, _ = chunk(state, data, length=chunk_length)
    jax.block_until_ready(state.params)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, _ = chunk(state, data, length=chunk_length)
        jax.block_until_ready(state.params)
        times.append((time.perf_counter() - start) / chunk_length)
    return float(np.median(times)), compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed scan chunk")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per block set")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    results = {}
    print(f"{'block set':<14}{'s/step':>10}{'steps/s':>10}{'compile s':>11}")
    for block in ("hierarchical", "full"):
        seconds, compile_s = time_block_set(block, args.chunk, args.repeats)
        results[block] = seconds
        print(f"{block:<14}{seconds:>10.4f}{1.0 / seconds:>10.1f}{compile_s:>11.1f}")
    print(f"full / hierarchical = {results['full'] / results['hierarchical']:.2f}")
    print(json.dumps({"hierarchical_s": results["hierarchical"], "full_s": results["full"]}))


if __name__ == "__main__":
    main()
