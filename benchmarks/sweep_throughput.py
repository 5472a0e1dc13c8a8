"""Stacked trials against one at a time: training throughput and the wall time of a small sweep.

(a) Trial-steps per second of 1, 2, 4, 8 and 16 trials stacked into one compiled program
    (:mod:`expfam.experiment.train.loop`, each vectorize mode) against one trial at a time (the solo
    chunk), at the default digits shapes (64 Binomial(16) pixels, n_latent 64, n_clusters 20,
    batch 128) and at the seed's MNIST shapes (784 pixels, n_latent 128, n_clusters 30, batch
    512, 10 Monte-Carlo and 1024 conjugation samples; synthetic counts). Every program is
    compiled and run once before it is timed; a figure is the best of ``--repeats`` timings of
    ``--chunk`` steps. Speedup = stacked throughput / one-at-a-time throughput.

(b) The wall time of a 10-trial (``--sweep-trials``) single-shape digits sweep (the scaled-down sweep's H1 and its
    one-knob variants: learning rate, KL warmup, conjugation and entropy weights, seeds), whole
    trials — compile, train, evaluate, write — stacked (``expfam sweep``'s default), one at a
    time (``--no-stack``: since the per-trial numbers are arguments of the compiled step, these
    trials share one compiled chunk too), and one at a time with each trial compiling its own
    programs (what a sweep did before), measured in the same run into fresh folders.

Prints a table per part and ends with one JSON line
``{"digits_speedup_8": ..., "seed_speedup_8": ..., "digits_sweep_wall_ratio": ..., "digits_speedups": ...}``
(wall ratio = stacked wall time / one-at-a-time wall time; ``digits_speedups`` every
``{mode: {size: speedup}}`` timed at the digits shapes).

    python benchmarks/sweep_throughput.py [--chunk 50] [--repeats 3] [--sizes 1 2 4 8 16]
        [--modes vmap map map@2] [--host-devices 2] [--sweep-mode map@2] [--sweep-steps 1500]
        [--sweep-trials 10] [--sweeps stacked one-at-a-time own-programs] [--skip-seed] [--skip-sweep]

``MODE@N`` spreads the stacked trials over N devices (on a CPU: ``--host-devices N`` host
devices, one per core, so a group uses every core).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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
from expfam.experiment.train.chunks import make_chunk, make_stacked_chunk, resolve_vectorize, stack
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state, step_numbers

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


def _timer(run: Callable[[], None]) -> Callable[[], float]:
    run()  # compile and warm up

    def once() -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    return once


def solo_runner(shapes: dict[str, int], train: dict[str, Any], chunk_length: int) -> Callable[[], None]:
    """One warm chunk of one trial (the solo chunk)."""
    model, config, data = _setup(shapes, train)
    chunk = make_chunk(model, config)
    holder = {"state": initial_state(model.init(jax.random.key(0), data), config, make_optimizer(config))}
    numbers = step_numbers(config)

    def run() -> None:
        holder["state"], _ = chunk(holder["state"], data, numbers, length=chunk_length)
        jax.block_until_ready(holder["state"].params)

    return run


def stacked_runner(
    shapes: dict[str, int], train: dict[str, Any], size: int, chunk_length: int, vectorize: str, devices: int | None
) -> Callable[[], None]:
    """One warm chunk of ``size`` trials (different seeds and learning rates) stacked into one program."""
    model, config, data = _setup(shapes, train)
    configs = [
        dataclasses.replace(config, seed=i, learning_rate=config.learning_rate * (1 + 0.1 * i)) for i in range(size)
    ]
    padded = configs + configs[:1] * ((-size) % devices if devices else 0)
    chunk = make_stacked_chunk(model, config, vectorize=vectorize, devices=devices)
    states = [initial_state(model.init(jax.random.key(c.seed), data), c, make_optimizer(c)) for c in padded]
    holder = {"states": stack(states)}
    numbers = stack([step_numbers(c) for c in padded])

    def run() -> None:
        holder["states"], _ = chunk(holder["states"], data, numbers, length=chunk_length)
        jax.block_until_ready(holder["states"].params)

    return run


def throughput_table(
    label: str, shapes: dict[str, int], train: dict[str, Any], args: argparse.Namespace, modes: list[str]
) -> dict[str, dict[int, float]]:
    """Print and return ``{mode: {size: speedup}}`` for one set of shapes.

    Each stacked figure is timed interleaved with the solo chunk (solo, stacked, solo, ...), so a
    change in the machine's load affects both; the best time of each is kept.
    """
    solo = _timer(solo_runner(shapes, train, args.chunk))
    print(f"\n({label})\n| trials | mode | trial-steps/s | one at a time | speedup |\n|---:|---|---:|---:|---:|")
    speedups: dict[str, dict[int, float]] = {mode: {} for mode in modes}
    for size in args.sizes:
        for mode in modes:
            vectorize, _, spread = mode.partition("@")
            stacked = _timer(
                stacked_runner(shapes, train, size, args.chunk, vectorize, int(spread) if spread else None)
            )
            solo_times, stacked_times = [], []
            for _ in range(args.repeats):
                solo_times.append(solo())
                stacked_times.append(stacked())
            solo_rate, rate = args.chunk / min(solo_times), size * args.chunk / min(stacked_times)
            speedups[mode][size] = rate / solo_rate
            print(f"| {size} | {mode} | {rate:.1f} | {solo_rate:.1f} | {rate / solo_rate:.2f} |", flush=True)
    return speedups


SWEEP_TEXT = """
title = "10 trials of one shape (benchmark)"
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
runs = [
    {{}},
    {{learning_rate = 2e-3}}, {{learning_rate = 4e-3}},
    {{kl_warmup_steps = {kl_short}}}, {{kl_warmup_steps = {kl_long}}},
    {{conj_weight = 0.0}}, {{conj_weight = 0.05}}, {{conj_weight = 0.2}},
    {{entropy_weight = 1.0, posterior_entropy_weight = 1.0}}, {{seed = 1}},
]
"""


def train_in_own_program(config: Any, run_dir: Path) -> dict[str, float]:
    """One trial as before stacking: its compiled programs are dropped first, so it compiles its own."""
    from expfam.experiment.sweeps.run import train_trial

    jax.clear_caches()  # the chunk programs are jax.jit's: this drops them too
    return train_trial(config, run_dir, plots=False)


SWEEPS = ("stacked", "one-at-a-time", "own-programs")


def sweep_wall_times(steps: int, trials: int, ways: list[str], vectorize: str, devices: int | None) -> dict[str, float]:
    """Wall seconds of the first `trials` trials of the sweep, run each of the `ways` (of `SWEEPS`).

    `stacked`: one group of every trial; `one-at-a-time`: `--no-stack`, sharing one compiled chunk;
    `own-programs`: one at a time, each trial compiling its own programs.
    """
    import tomllib

    from expfam.experiment.sweeps.run import run_sweep
    from expfam.experiment.sweeps.spec import parse_sweep

    text = SWEEP_TEXT.format(
        steps=steps,
        kl=int(0.4 * steps),
        conj=max(1, steps // 6),
        log=max(1, steps // 3),
        kl_short=steps // 6,
        kl_long=steps // 2,
    )
    mapping = tomllib.loads(text)
    mapping["phases"][0]["runs"] = mapping["phases"][0]["runs"][:trials]
    spec = parse_sweep(mapping)
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in ways:
            jax.clear_caches()
            started = time.perf_counter()
            run_sweep(
                spec,
                Path(folder) / name,
                runner=train_in_own_program if name == "own-programs" else None,
                stack=trials if name == "stacked" else 1,
                plots=False,
                run_plots=False,
                vectorize=vectorize,
                devices=devices if name == "stacked" else None,
            )
            walls[name] = time.perf_counter() - started
            print(f"| {name} | {walls[name]:.1f} s |", flush=True)
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk", type=int, default=50, help="steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks per figure (the best is kept)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="stack sizes")
    parser.add_argument(
        "--seed-chunk", type=int, default=0, help="steps per timed chunk at the seed's shapes (default --chunk)"
    )
    parser.add_argument(
        "--seed-sizes", type=int, nargs="+", default=None, help="stack sizes at the seed's shapes (default --sizes)"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=None,
        help="stacked modes to time: vmap, map, or MODE@N (trials spread over N devices); "
        "default: vmap, map, and map@D / vmap@D when D > 1 devices are visible",
    )
    parser.add_argument(
        "--host-devices",
        type=int,
        default=0,
        help="on a CPU, make this many host devices (XLA_FLAGS; must come before JAX starts)",
    )
    parser.add_argument("--sweep-steps", type=int, default=1500, help="steps per trial of the sweep of part (b)")
    parser.add_argument(
        "--sweep-trials", type=int, default=10, choices=range(1, 11), metavar="1..10", help="trials of part (b)'s sweep"
    )
    parser.add_argument(
        "--sweeps", nargs="+", default=list(SWEEPS), choices=SWEEPS, help="the ways part (b) runs the sweep"
    )
    parser.add_argument(
        "--sweep-mode",
        default="",
        help="the mode whose speedup the JSON line reports and the sweep of (b) uses (default: auto's mode)",
    )
    parser.add_argument("--skip-seed", action="store_true", help="skip the seed's (MNIST) shapes")
    parser.add_argument("--skip-sweep", action="store_true", help="skip part (b)")
    args = parser.parse_args(argv)
    if args.host_devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        flag = f"--xla_force_host_platform_device_count={args.host_devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    count = len(jax.devices())
    modes = args.modes or ["vmap", "map"] + ([f"map@{count}", f"vmap@{count}"] if count > 1 else [])
    best = args.sweep_mode or resolve_vectorize("auto")
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), {count} device(s); "
        f"reported mode: {best}"
    )
    if best not in modes:
        modes.append(best)
    digits = throughput_table("a, digits shapes", DIGITS, DIGITS_TRAIN, args, modes)
    summary: dict[str, Any] = {"digits_speedup_8": digits.get(best, {}).get(8), "digits_speedups": digits}
    if not args.skip_seed:
        seed_args = argparse.Namespace(**vars(args))
        seed_args.chunk = args.seed_chunk or args.chunk
        seed_args.sizes = args.seed_sizes or args.sizes
        seed = throughput_table("a, seed shapes", SEED, SEED_TRAIN, seed_args, modes)
        summary["seed_speedup_8"] = seed.get(best, {}).get(8)
    if not args.skip_sweep:
        print(
            f"\n(b) {args.sweep_trials}-trial digits sweep, {args.sweep_steps} steps per trial\n"
            "| run | wall |\n|---|---:|"
        )
        vectorize, _, spread = best.partition("@")
        walls = sweep_wall_times(
            args.sweep_steps, args.sweep_trials, args.sweeps, vectorize, int(spread) if spread else None
        )
        summary["digits_sweep_walls_s"] = walls
        ratios = {"digits_sweep_wall_ratio": "one-at-a-time", "digits_sweep_wall_ratio_vs_own_programs": "own-programs"}
        for key, other in ratios.items():
            summary[key] = walls["stacked"] / walls[other] if "stacked" in walls and other in walls else None
            if summary[key] is not None:
                print(f"wall ratio stacked / {other}: {summary[key]:.2f}")
    summary["vectorize"] = best
    summary["device"] = jax.devices()[0].device_kind
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
