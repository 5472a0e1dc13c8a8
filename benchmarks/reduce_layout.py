"""Benchmark: summing a per-cluster array over its cluster axis, in each of three layouts.

The full model's posterior holds one latent parameter vector per observation and cluster,
``B × n × (K−1)`` numbers. Its consumers reduce over the cluster axis (``Σ_k q(k|x) ∂ψ_Y``,
the adjoint's cotangent) and over the latent axis (``ψ_Y(θ_k(x)) = Σ_i softplus(θ_ki)``).
Which axis is the leading one decides how fast XLA's CPU backend runs those reductions: in
jax 0.10.2 a sum over a short *leading* axis into a large result was found to be many times
slower than the same sum over a middle or trailing axis (docs/benchmarks.md, "A slower
machine of the same kind, and two layouts tried"). This script times, for the layouts ``(J, B, n)``, ``(B, J, n)`` and
``(B, n, J)`` with ``J = K − 1``:

* ``cluster sum``: ``Σ_j a[..j..]`` → ``(B, n)``;
* ``latent sum``: ``Σ_i softplus(a[..i..])`` → ``(B, J)``, the Bernoulli log-partition with the
  library's own softplus (:mod:`expfam.families.softplus`).

Each is one compiled function on a fresh random array; medians over ``--repeats`` calls. Run it
again under ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-LIBRARY_FUSION_TYPE_REDUCE``
to see the same reductions without XLA's YNNPACK reduce fusion. Ends with one JSON line.

    python benchmarks/reduce_layout.py [--batch-size 512] [--n-latent 128] [--n-clusters 30]
        [--repeats 21]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from expfam.families.softplus import softplus

#: Layout name → (shape as a function of (J, B, n), cluster axis, latent axis).
LAYOUTS: dict[str, tuple[Callable[[int, int, int], tuple[int, int, int]], int, int]] = {
    "(J, B, n)": (lambda j, b, n: (j, b, n), 0, 2),
    "(B, J, n)": (lambda j, b, n: (b, j, n), 1, 2),
    "(B, n, J)": (lambda j, b, n: (b, n, j), 2, 1),
}


def median_seconds(function: Callable[[jax.Array], jax.Array], a: jax.Array, repeats: int) -> float:
    """Median wall time of ``function(a)`` over ``repeats`` calls, after one compiling call."""
    function(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--n-latent", type=int, default=128)
    parser.add_argument("--n-clusters", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    if min(args.batch_size, args.n_latent, args.repeats) < 1 or args.n_clusters < 2:
        parser.error("--batch-size, --n-latent and --repeats must be ≥ 1 and --n-clusters ≥ 2")
    j, b, n = args.n_clusters - 1, args.batch_size, args.n_latent
    key = jax.random.key(0)
    flags = os.environ.get("XLA_FLAGS", "")
    results: dict[str, dict[str, float]] = {}
    print(f"J = {j}, B = {b}, n = {n}, float32; XLA_FLAGS={flags!r}")
    print(f"{'layout':<12}{'cluster sum ms':>16}{'latent sum ms':>16}")
    for name, (shape, cluster_axis, latent_axis) in LAYOUTS.items():
        a = jax.random.normal(key, shape(j, b, n), jnp.float32)
        cluster_sum = jax.jit(lambda a, axis=cluster_axis: a.sum(axis=axis))
        latent_sum = jax.jit(lambda a, axis=latent_axis: softplus(a).sum(axis=axis))
        results[name] = {
            "cluster_sum_ms": 1e3 * median_seconds(cluster_sum, a, args.repeats),
            "latent_sum_ms": 1e3 * median_seconds(latent_sum, a, args.repeats),
        }
        print(f"{name:<12}{results[name]['cluster_sum_ms']:>16.3f}{results[name]['latent_sum_ms']:>16.3f}")
    summary = {
        "layouts": results,
        "n_clusters": args.n_clusters,
        "batch_size": b,
        "n_latent": n,
        "xla_flags": flags,
        "device": str(jax.devices()[0].platform),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
