"""Benchmark: the floor under the full step's cost, as a multiple of the hierarchical step.

Beyond the hierarchical step, an exact full step must do two matrix products that no
formulation of the objective avoids (docs/benchmarks.md, "The full model's floor"):

* the ``xyk`` adjoint for the posterior, ``V_kᵀ x`` for every cluster:
  ``(B, D)·(D, n(K−1))``;
* its backward pass, ``∂V = Xᵀ G``: ``(D, B)·(B, n(K−1))`` (``G`` is dense: every loss
  term that reads ``q(k | x)`` reads every cluster's ``ψ_Y(θ_k(x))``).

The offsets at the ``B·S + S_c`` sampled states are not extra work: the full model evaluates
``(W + V_k) y + u_k`` as one grouped product (``expfam.affine``), the multiply-adds of the
hierarchical step's own ``W y`` product, forward and backward.

This script times the hierarchical step (the real compiled chunk, as
``benchmarks/step_time.py`` does) and then those two products as *dense* matrix products of
the same sizes in one compiled function, and prints

    floor ratio = (hierarchical step + the two products) / hierarchical step,

the least ``full / hierarchical`` an exact full step can reach on this machine with nothing
else added (no optimiser state for ``V``, no sorting, no grouped windows). It also times the
measured full step and prints its ratio beside the floor. Measured in one process,
interleaved over ``--rounds`` rounds; medians. Ends with one JSON line.

    python benchmarks/full_floor.py [--rounds 5] [--chunk 10] [--batch-size 512]
        [--n-latent 128] [--n-clusters 30] [--data-dim 784]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import jax

from step_time import SEED_SHAPES, SEED_TRAIN, make_runner


def products(batch: int, d: int, n: int, k: int) -> tuple[Callable[[], None], float]:
    """A warm callable running the two adjoint products once, and their GFLOP (2 per multiply-add)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(keys[0], (batch, d))
    v = jax.random.normal(keys[1], (d, n * (k - 1)))
    g = jax.random.normal(keys[2], (batch, n * (k - 1)))

    @jax.jit
    def work(x: jax.Array, v: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
        adjoint = x @ v  # V_kᵀ x for every cluster
        d_v = x.T @ g  # ∂V through the adjoint
        return adjoint, d_v

    def run() -> None:
        jax.block_until_ready(work(x, v, g))

    run()
    gflop = 2 * (2 * batch * d * n * (k - 1)) / 1e9
    return run, gflop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--chunk", type=int, default=10, help="steps per timed chunk of the real steps")
    parser.add_argument("--batch-size", type=int, default=SEED_TRAIN["batch_size"])
    parser.add_argument("--n-latent", type=int, default=SEED_SHAPES["n_latent"])
    parser.add_argument("--n-clusters", type=int, default=SEED_SHAPES["n_clusters"])
    parser.add_argument("--data-dim", type=int, default=SEED_SHAPES["data_dim"])
    args = parser.parse_args()
    shapes = {**SEED_SHAPES, "n_latent": args.n_latent, "n_clusters": args.n_clusters, "data_dim": args.data_dim}
    train = {**SEED_TRAIN, "batch_size": args.batch_size}
    d, n, k = shapes["data_dim"], shapes["n_latent"], shapes["n_clusters"]
    hierarchical = make_runner("hierarchical", args.chunk, shapes, train)
    full = make_runner("full", args.chunk, shapes, train)
    extra, gflop = products(args.batch_size, d, n, k)
    hierarchical()
    full()
    times: dict[str, list[float]] = {"hierarchical": [], "full": [], "products": []}
    calls = {
        "hierarchical": 1,
        "full": 1,
        "products": args.chunk,
    }  # a chunk runs `chunk` steps; the products one step's
    runners = {"hierarchical": hierarchical, "full": full, "products": extra}
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                run()
            times[name].append((time.perf_counter() - start) / args.chunk)
    median = {name: statistics.median(values) for name, values in times.items()}
    floor = (median["hierarchical"] + median["products"]) / median["hierarchical"]
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    print(
        f"shapes: D={d}, n={n}, K={k}, batch {args.batch_size}, {train['n_mc_samples']} MC, {train['n_conj_samples']} conj"
    )
    print("| piece | s/step |")
    print("|---|---:|")
    print(f"| hierarchical step | {median['hierarchical']:.4f} |")
    print(
        f"| the two xyk adjoint products, dense ({gflop:.2f} GFLOP, {gflop / median['products']:.0f} GFLOP/s) | {median['products']:.4f} |"
    )
    print(f"| full step (measured) | {median['full']:.4f} |")
    print(f"floor ratio (hierarchical + products) / hierarchical = {floor:.2f}")
    print(f"measured full / hierarchical = {median['full'] / median['hierarchical']:.2f}")
    result = {
        "hierarchical_s": median["hierarchical"],
        "products_s": median["products"],
        "full_s": median["full"],
        "products_gflop": gflop,
        "floor_ratio": floor,
        "full_ratio": median["full"] / median["hierarchical"],
        "device": jax.devices()[0].device_kind,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
