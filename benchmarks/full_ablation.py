"""Benchmark: what each piece of the full step costs, priced by taking it out of the real step.

The full step differs from the hierarchical one by three pieces of work. This script prices
each by compiling the real full training chunk (as ``benchmarks/step_time.py`` does) with that
piece removed, and timing it beside the unchanged full step and the hierarchical step:

=====================  =========================================================================
variant                what is removed (the variant trains a *different, wrong* model: it exists
                       only to be timed)
=====================  =========================================================================
``full``               nothing: the full step as it is
``dense-offsets``      the grouped product at the sampled states: the offsets become the
                       hierarchical step's dense ``W s_Y(y)`` (no ``V_k s_Y(y) + u_k``, no sort)
``adjoint-no-grad``    the backward pass of the ``xyk`` adjoint ``V_kᵀ x`` (``∂V = Xᵀ G``)
``no-adjoint``         the ``xyk`` adjoint forward and backward (``V_kᵀ x`` is zero)
``neither``            both the grouped product and the adjoint
=====================  =========================================================================

so that, per step,

* grouped product        = full − dense-offsets
* adjoint backward       = full − adjoint-no-grad
* adjoint (both passes)  = full − no-adjoint
* rest                   = neither − hierarchical (Adam and the finiteness check on ``V``,
  the ``xk`` block, ``log q(z | x)`` with a per-observation ``W_yk``, …)

Unlike ``trace_step.py`` (XLA's per-operation times, summed over threads), these are wall
times of the step as it runs, overlap between threads included. Each variant runs in a fresh
process (a patched program must not share a process with another); the processes alternate
over ``--rounds`` rounds, and each reports the median of ``--repeats`` chunks of its variant
and of the hierarchical step. ``--cores 1`` pins each process to one CPU (Linux): this
project's 2-core machine has phases in which the two-core full step is 30% slower for a
whole process, while the one-core figures move by about 1% (docs/benchmarks.md).

    python benchmarks/full_ablation.py [--cores 1] [--rounds 2] [--repeats 5] [--chunk 10]
        [--batch-size 512] [--n-latent 128] [--n-clusters 30] [--data-dim 784]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("full", "dense-offsets", "adjoint-no-grad", "no-adjoint", "neither")
HERE = Path(__file__).resolve().parent


def allowed_cpus(cores: int | None) -> set[int] | None:
    """The first ``cores`` CPUs this process may use; ``None`` for no pinning. Refuses what cannot be pinned."""
    if cores is None:
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("error: --cores needs os.sched_setaffinity (Linux); leave it out on this system")
    allowed = sorted(os.sched_getaffinity(0))
    if cores < 1 or cores > len(allowed):
        raise SystemExit(
            f"error: --cores must be between 1 and {len(allowed)} (the CPUs this process may use), got {cores}"
        )
    return set(allowed[:cores])


def pin(cores: int | None) -> None:
    """Restrict this process to its first ``cores`` allowed CPUs (before JAX starts its threads)."""
    cpus = allowed_cpus(cores)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


def replacements(variant: str) -> list[tuple[Any, str, Any]]:
    """``(module, name, value)`` for each global to replace so that ``variant``'s piece is gone.

    The model looks these names up when the step is traced, so setting them before the step is
    compiled removes the piece from the compiled program.
    """
    import jax
    import jax.numpy as jnp

    import expfam.model as model_module
    import interactions.xyk as xyk_module

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    adjoint = xyk_module.cluster_adjoint

    def dense_offsets(shared: Any, per_cluster: Any, bias: Any, y: Any, k: Any, **_: Any) -> Any:
        return y @ shared.T

    def no_adjoint(matrices: Any, statistic: Any) -> Any:
        return jnp.zeros((statistic.shape[0], matrices.shape[2], matrices.shape[0]), statistic.dtype)

    def adjoint_no_grad(matrices: Any, statistic: Any) -> Any:
        return adjoint(jax.lax.stop_gradient(matrices), statistic)

    out: list[tuple[Any, str, Any]] = []
    if variant in ("dense-offsets", "neither"):
        out.append((model_module, "cluster_affine_sorted", dense_offsets))
    if variant in ("no-adjoint", "neither"):
        out.append((xyk_module, "cluster_adjoint", no_adjoint))
    if variant == "adjoint-no-grad":
        out.append((xyk_module, "cluster_adjoint", adjoint_no_grad))
    return out


def child(args: argparse.Namespace) -> None:
    """Time one variant and the hierarchical step in this process; print one JSON line."""
    pin(args.cores)
    sys.path.insert(0, str(HERE))
    from step_time import SEED_SHAPES, SEED_TRAIN, make_runner

    for module, name, value in replacements(args.variant):
        setattr(module, name, value)
    shapes = {**SEED_SHAPES, "n_latent": args.n_latent, "n_clusters": args.n_clusters, "data_dim": args.data_dim}
    train = {**SEED_TRAIN, "batch_size": args.batch_size}
    runners = {
        "variant": make_runner("full", args.chunk, shapes, train),
        "hierarchical": make_runner("hierarchical", args.chunk, shapes, train),
    }
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / args.chunk)
    print(json.dumps({name: statistics.median(values) for name, values in times.items()}))


def run_child(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """One fresh process timing ``variant``; its JSON line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
    for flag in ("cores", "repeats", "chunk", "batch_size", "n_latent", "n_clusters", "data_dim"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"variant {variant!r} failed:\n{result.stderr[-3000:]}")
    parsed: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def priced_pieces(step: dict[str, float], hierarchical: float) -> dict[str, float]:
    """Each piece's seconds per step, from the variants that were timed (a piece needs both of its terms)."""
    differences = {
        "grouped_product": ("full", "dense-offsets"),
        "adjoint_backward": ("full", "adjoint-no-grad"),
        "adjoint": ("full", "no-adjoint"),
    }
    pieces = {name: step[a] - step[b] for name, (a, b) in differences.items() if a in step and b in step}
    if "neither" in step:
        pieces["rest"] = step["neither"] - hierarchical
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=None, help="pin each timing process to this many CPUs (Linux)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, alternating")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per process")
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--n-latent", type=int, default=128)
    parser.add_argument("--n-clusters", type=int, default=30)
    parser.add_argument("--data-dim", type=int, default=784)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="variants to time")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant is not None:
        child(args)
        return
    allowed_cpus(args.cores)  # a bad --cores is refused before any process starts
    variants = [variant for variant in VARIANTS if variant in args.variants]
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            runs[variant].append(run_child(variant, args))
    processes = {variant: [run["variant"] for run in runs[variant]] for variant in variants}
    step = {variant: statistics.median(values) for variant, values in processes.items()}
    every = sorted(run["hierarchical"] for values in runs.values() for run in values)
    hierarchical = statistics.median(every)
    pieces = priced_pieces(step, hierarchical)
    cores = "all" if args.cores is None else str(args.cores)
    print(f"cores: {cores}; shapes D={args.data_dim}, n={args.n_latent}, K={args.n_clusters}, batch {args.batch_size}")
    print(
        f"medians over {args.rounds} processes per variant, each the median of {args.repeats} chunks of {args.chunk} steps"
    )
    print("| variant | s/step | / hierarchical | each process |")
    print("|---|---:|---:|---|")
    print(f"| hierarchical | {hierarchical:.4f} | 1.00 | {', '.join(f'{value:.4f}' for value in every)} |")
    for variant in variants:
        each = ", ".join(f"{value:.4f}" for value in processes[variant])
        print(f"| {variant} | {step[variant]:.4f} | {step[variant] / hierarchical:.2f} | {each} |")
    print("| piece of the full step | s/step | share of full − hierarchical |")
    print("|---|---:|---:|")
    extra = step.get("full", float("nan")) - hierarchical
    for name, seconds in pieces.items():
        print(f"| {name.replace('_', ' ')} | {seconds:.4f} | {seconds / extra:.2f} |")
    print(
        json.dumps(
            {
                "cores": cores,
                "hierarchical_s": hierarchical,
                "steps_s": step,
                "pieces_s": pieces,
                "processes_s": processes,
            }
        )
    )


if __name__ == "__main__":
    main()
