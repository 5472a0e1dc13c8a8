"""Benchmark: the floor under the full step's cost, as a multiple of the hierarchical step.

The full block set adds to every hierarchical step four matrix products that no exact
formulation of the objective avoids (docs/benchmarks.md, "The full model's floor"):

* the ``xyk`` adjoint for the posterior, ``V_kᵀ x`` for every cluster:
  ``(B, D)·(D, n(K−1))``;
* its backward pass, ``∂V = Xᵀ G``: ``(D, B)·(B, n(K−1))`` (``G`` is dense: every loss
  term that reads ``q(k | x)`` reads every cluster's ``ψ_Y(θ_k(x))``);
* the ``xyk`` offset ``V_k y`` at the ``B·S + S_c`` sampled states, as many multiply-adds
  as one ``(B·S + S_c, n)·(n, D)`` product whatever the grouping;
* its backward pass for ``∂V``, as many again.

This script times the hierarchical step (the real compiled chunk, as
``benchmarks/step_time.py`` does) and then those four products as *dense* matrix products of
the same sizes, in one compiled function (the best case for the grouped ones, which run on
windows of sorted samples), and prints

    floor ratio = (hierarchical step + the four products) / hierarchical step,

the least ``full / hierarchical`` any exact full step can reach on this machine, with
nothing else added (no ``xk`` work, no larger optimiser state, no extra elementwise work).
It also times the measured full step and prints its ratio beside the floor. Measured in
one process, interleaved over ``--rounds`` rounds; medians. Ends with one JSON line.

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


def products(batch: int, samples: int, conj: int, d: int, n: int, k: int) -> tuple[Callable[[], None], float]:
    """A warm callable running the four products once, and their GFLOP (2 per multiply-add)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    x = jax.random.normal(keys[0], (batch, d))
    v = jax.random.normal(keys[1], (d, n * (k - 1)))
    g = jax.random.normal(keys[2], (batch, n * (k - 1)))
    y = jax.random.normal(keys[3], (batch * samples + conj, n))
    vk = jax.random.normal(keys[4], (n, d))
    g_theta = jax.random.normal(keys[5], (batch * samples + conj, d))

    @jax.jit
    def work(
        x: jax.Array, v: jax.Array, g: jax.Array, y: jax.Array, vk: jax.Array, g_theta: jax.Array
    ) -> tuple[jax.Array, ...]:
        adjoint = x @ v  # V_kᵀ x for every cluster
        d_v = x.T @ g  # ∂V through the adjoint
        offset = y @ vk  # V_k y at the sampled states (dense stand-in for the grouped product)
        d_vk = g_theta.T @ y  # ∂V through the offset
        return adjoint, d_v, offset, d_vk

    def run() -> None:
        jax.block_until_ready(work(x, v, g, y, vk, g_theta))

    run()
    states = batch * samples + conj
    gflop = 2 * (2 * batch * d * n * (k - 1) + 2 * states * n * d) / 1e9
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
    extra, gflop = products(args.batch_size, train["n_mc_samples"], train["n_conj_samples"], d, n, k)
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
        f"| the four xyk products, dense ({gflop:.2f} GFLOP, {gflop / median['products']:.0f} GFLOP/s) | {median['products']:.4f} |"
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
