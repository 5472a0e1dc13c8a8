"""Stacked trials against one at a time: training throughput and the wall time of a small sweep.

(a) Trial-steps per second of 1, 2, 4, 8 and 16 trials stacked into one compiled program
    (:mod:`expfam.experiment.stacked`, each vectorize mode) against one trial at a time (the solo
    chunk), at the default digits shapes (64 Binomial(16) pixels, n_latent 64, n_clusters 20,
    batch 128) and at the seed's MNIST shapes (784 pixels, n_latent 128, n_clusters 30, batch
    512, 10 Monte-Carlo and 1024 conjugation samples; synthetic counts). Every program is
    compiled and run once before it is timed; a figure is the best of ``--repeats`` timings of
    ``--chunk`` steps. Speedup = stacked throughput / one-at-a-time throughput.

(b) The wall time of a 10-trial single-shape digits sweep (the scaled-down sweep's H1 and its
    one-knob variants: learning rate, KL warmup, conjugation and entropy weights, seeds), whole
    trials — compile, train, evaluate, write — stacked (``expfam sweep``'s default) and one at a
    time (``--no-stack``), measured in the same run into fresh folders.

Prints a table per part and ends with one JSON line
``{"digits_speedup_8": ..., "seed_speedup_8": ..., "digits_sweep_wall_ratio": ...}``
(wall ratio = stacked wall time / one-at-a-time wall time).

    python benchmarks/sweep_throughput.py [--chunk 50] [--repeats 3] [--sizes 1 2 4 8 16]
        [--vectorize auto] [--sweep-steps 1500] [--skip-seed] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from expfam.builder import build_model
from expfam.experiment.config import TrainConfig
from expfam.experiment.stacked import make_stacked_chunk, resolve_vectorize, stack
from expfam.experiment.training import initial_state, make_chunk, make_optimizer, step_numbers

DIGITS = {"data_dim": 64, "n_trials": 16, "n_latent": 64, "n_clusters": 20, "n_data": 1437}
DIGITS_TRAIN: dict[str, Any] = {}  # TrainConfig's defaults are the digits main job's
SEED = {"data_dim": 784, "n_trials": 16, "n_latent": 128, "n_clusters": 30, "n_data": 8192}
SEED_TRAIN = {"batch_size": 512, "n_mc_samples": 10, "n_conj_samples": 1024, "kl_warmup_steps": 120_000}


def _setup(shapes: dict[str, int], train: dict[str, Any]) -> tuple[Any, TrainConfig, jax.Array]:
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": shapes["n_trials"]},
        data_dim=shapes["data_dim"],
        n_latent=shapes["n_latent"],
        n_clusters=shapes["n_clusters"],
        blocks="hierarchical",
    )
    data = jax.random.binomial(
        jax.random.key(1), shapes["n_trials"], 0.2, (shapes["n_data"], shapes["data_dim"])
    ).astype(jnp.float32)
    return model, dataclasses.replace(TrainConfig(), **train), data


def _best_time(run: Callable[[], None], repeats: int) -> float:
    run()  # compile and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def solo_throughput(shapes: dict[str, int], train: dict[str, Any], chunk_length: int, repeats: int) -> float:
    """Trial-steps per second of one trial at a time (the solo chunk)."""
    model, config, data = _setup(shapes, train)
    chunk = make_chunk(model, config)
    holder = {"state": initial_state(model.init(jax.random.key(0), data), config, make_optimizer(config))}
    numbers = step_numbers(config)

    def run() -> None:
        holder["state"], _ = chunk(holder["state"], data, numbers, length=chunk_length)
        jax.block_until_ready(holder["state"].params)

    return chunk_length / _best_time(run, repeats)


def stacked_throughput(
    shapes: dict[str, int], train: dict[str, Any], size: int, chunk_length: int, repeats: int, vectorize: str
) -> float:
    """Trial-steps per second of ``size`` trials (different seeds and learning rates) stacked into one program."""
    model, config, data = _setup(shapes, train)
    configs = [
        dataclasses.replace(config, seed=i, learning_rate=config.learning_rate * (1 + 0.1 * i)) for i in range(size)
    ]
    chunk = make_stacked_chunk(model, config, vectorize=vectorize)
    states = [initial_state(model.init(jax.random.key(c.seed), data), c, make_optimizer(c)) for c in configs]
    holder = {"states": stack(states)}
    numbers = stack([step_numbers(c) for c in configs])

    def run() -> None:
        holder["states"], _ = chunk(holder["states"], data, numbers, length=chunk_length)
        jax.block_until_ready(holder["states"].params)

    return size * chunk_length / _best_time(run, repeats)


def throughput_table(
    label: str, shapes: dict[str, int], train: dict[str, Any], args: argparse.Namespace, modes: list[str]
) -> dict[str, dict[int, float]]:
    """Print and return ``{mode: {size: speedup}}`` for one set of shapes."""
    solo = solo_throughput(shapes, train, args.chunk, args.repeats)
    print(f"\n({label}) one at a time: {solo:.1f} trial-steps/s")
    print(f"| trials | mode | trial-steps/s | speedup |\n|---:|---|---:|---:|\n| 1 (solo) | — | {solo:.1f} | 1.00 |")
    speedups: dict[str, dict[int, float]] = {mode: {} for mode in modes}
    for size in args.sizes:
        for mode in modes:
            rate = stacked_throughput(shapes, train, size, args.chunk, args.repeats, mode)
            speedups[mode][size] = rate / solo
            print(f"| {size} | {mode} | {rate:.1f} | {rate / solo:.2f} |", flush=True)
    return speedups


SWEEP_TEXT = """
title = "10 trials of one shape (benchmark)"
prefix = "H"
[base.model]
n_latent = 32
n_clusters = 30
[base.train]
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
runs = [
    {{}},
    {{learning_rate = 2e-3}}, {{learning_rate = 4e-3}},
    {{kl_warmup_steps = {kl_short}}}, {{kl_warmup_steps = {kl_long}}},
    {{conj_weight = 0.0}}, {{conj_weight = 0.05}}, {{conj_weight = 0.2}},
    {{entropy_weight = 1.0, posterior_entropy_weight = 1.0}}, {{seed = 1}},
]
"""


def sweep_wall_times(steps: int, stack_size: int) -> tuple[float, float]:
    """Wall seconds of the 10-trial sweep ``(stacked, one at a time)``, each into a fresh folder."""
    from expfam.experiment.sweep import parse_sweep, run_sweep
    from expfam.experiment.training import clear_chunk_cache

    text = SWEEP_TEXT.format(
        steps=steps,
        kl=int(0.4 * steps),
        conj=max(1, steps // 6),
        log=max(1, steps // 3),
        kl_short=steps // 6,
        kl_long=steps // 2,
    )
    import tomllib

    spec = parse_sweep(tomllib.loads(text))
    walls = []
    with tempfile.TemporaryDirectory() as folder:
        for name, stack_cap in (("stacked", stack_size), ("one-at-a-time", 1)):
            clear_chunk_cache()
            started = time.perf_counter()
            run_sweep(spec, Path(folder) / name, stack=stack_cap, plots=False, run_plots=False)
            walls.append(time.perf_counter() - started)
            print(f"| {name} | {walls[-1]:.1f} s |", flush=True)
    return walls[0], walls[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=50, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks per figure (the best is kept)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="stack sizes")
    parser.add_argument("--vectorize", nargs="+", default=["vmap", "map"], help="stacked modes to time")
    parser.add_argument("--sweep-steps", type=int, default=1500, help="steps per trial of the sweep of part (b)")
    parser.add_argument("--skip-seed", action="store_true", help="skip the seed's (MNIST) shapes")
    parser.add_argument("--skip-sweep", action="store_true", help="skip part (b)")
    args = parser.parse_args(argv)
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"auto vectorize = {resolve_vectorize('auto')}"
    )
    best = resolve_vectorize("auto")
    modes = list(dict.fromkeys(args.vectorize))
    digits = throughput_table("a, digits shapes", DIGITS, DIGITS_TRAIN, args, modes)
    summary: dict[str, Any] = {"digits_speedup_8": digits.get(best, {}).get(8)}
    if not args.skip_seed:
        seed = throughput_table("a, seed shapes", SEED, SEED_TRAIN, args, modes)
        summary["seed_speedup_8"] = seed.get(best, {}).get(8)
    if not args.skip_sweep:
        print(f"\n(b) 10-trial digits sweep, {args.sweep_steps} steps per trial\n| run | wall |\n|---|---:|")
        stacked, solo = sweep_wall_times(args.sweep_steps, 10)
        summary["digits_sweep_wall_ratio"] = stacked / solo
        print(f"wall ratio (stacked / one at a time): {stacked / solo:.2f}")
    summary["vectorize"] = best
    summary["device"] = jax.devices()[0].device_kind
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
