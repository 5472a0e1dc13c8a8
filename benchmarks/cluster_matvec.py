"""Benchmark: per-cluster matrix-vector products ``out[s] = V[k_s - 1] @ y_s``.

Seed shapes: D=784, n=128, K=30 (V: (K-1, D, n)), S=5120 (posterior samples) and
S=1024 (prior samples), float32, binary y, uniform random k.

Methods (all jitted; "fwd+bwd" is ``jax.grad`` w.r.t. V and y of ``sum(out * c)`` for a
fixed random cotangent ``c``):

  hier          hierarchical reference: one (S, n) @ (n, D) matmul (the floor)
  dense         one-hot outer product features (S, n(K-1)) @ (n(K-1), D)    [a]
  ragged_dot    sort by k, jax.lax.ragged_dot with a zero matrix for
                cluster 0, unsort                                           [b]
  tiles_gather  sort, pad every cluster to whole tiles of 64 rows (static
                worst-case tile count), gather V per tile, batched einsum  [c]
  gather        per-sample gather V[k-1] (S, D, n) + einsum                 [e]
                (S=1024 only: at S=5120 the intermediate alone is 2 GB)
  scan_autodiff sorted windows of 64 rows via lax.scan over the static
                worst-case window count, backward by autodiff              [f]
  cluster_matvec[T=..]  src/interactions/grouped.py: sorted windows, fori_loop
                over only the windows that exist, custom_vjp backward over
                the same windows (default T from default_tile_rows)         [f]

Prints a table (median and min of warm runs, ms; ratio = median / hier median) and
ends with one JSON line.  Run: ``python benchmarks/cluster_matvec.py`` (< 3 min).
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import jax
import jax.numpy as jnp
from jax import lax

from interactions.grouped import (
    cluster_matvec,
    cluster_matvec_dense,
    default_tile_rows,
)

D, N, K = 784, 128, 30
SIZES = (5120, 1024)
TIME_PER_CASE_S = 0.8  # stop repeating a measurement after this much wall time
MIN_REPS, MAX_REPS = 3, 15


# ----------------------------------------------------------------------------- methods
def hier(V, y, k):
    del k
    return y @ V[0].T


def ragged(V, y, k):
    km1, d, n = V.shape
    order = jnp.argsort(k)
    sizes = jnp.bincount(k, length=km1 + 1).astype(jnp.int32)
    rhs = jnp.concatenate([jnp.zeros((1, n, d), V.dtype), jnp.transpose(V, (0, 2, 1))], axis=0)
    out_sorted = lax.ragged_dot(y[order], rhs, sizes)
    return jnp.zeros_like(out_sorted).at[order].set(out_sorted)


def per_sample_gather(V, y, k):
    vs = V[jnp.maximum(k - 1, 0)]
    return jnp.where((k > 0)[:, None], jnp.einsum("sdn,sn->sd", vs, y), 0.0)


def _padded_tiles(k, km1, tile):
    """Static worst-case padded layout: each cluster padded to whole tiles."""
    s = k.shape[0]
    nt = (s + km1 * (tile - 1)) // tile
    counts = jnp.bincount(k, length=km1 + 1)[1:]
    order = jnp.argsort(k, stable=True)
    gstart = jnp.cumsum(counts) - counts + (s - counts.sum())
    ntile = (counts + tile - 1) // tile
    tend = jnp.cumsum(ntile)
    tstart = tend - ntile
    tc = jnp.minimum(jnp.searchsorted(tend, jnp.arange(nt), side="right"), km1 - 1)
    p = jnp.arange(nt * tile)
    c = tc[p // tile]
    r = p - tstart[c] * tile
    valid = (p // tile < tend[-1]) & (r < counts[c])
    src = jnp.where(valid, order[jnp.clip(gstart[c] + r, 0, s - 1)], s)
    rank = jnp.zeros(s, jnp.int32).at[order].set(jnp.arange(s, dtype=jnp.int32))
    km = jnp.maximum(k - 1, 0)
    dest = jnp.where(k > 0, tstart[km] * tile + rank - gstart[km], nt * tile)
    return nt, tc, src, dest


def _pad0(x):
    return jnp.concatenate([x, jnp.zeros((1, *x.shape[1:]), x.dtype)], axis=0)


def tiles_gather(V, y, k, tile=64):
    nt, tc, src, dest = _padded_tiles(k, V.shape[0], tile)
    yp = _pad0(y)[src].reshape(nt, tile, -1)
    op = jnp.einsum("tdn,trn->trd", V[tc], yp).reshape(nt * tile, -1)
    return _pad0(op)[dest]


def scan_autodiff(V, y, k, tile=64):
    nt, tc, src, dest = _padded_tiles(k, V.shape[0], tile)
    yp = _pad0(y)[src].reshape(nt, tile, -1)

    def step(carry, xs):
        c, rows = xs
        return carry, lax.dot_general(rows, V[c], (((1,), (1,)), ((), ())))

    op = lax.scan(step, None, (tc, yp))[1].reshape(nt * tile, -1)
    return _pad0(op)[dest]


def methods_for(s):
    t_def = default_tile_rows(s, K)
    ms = {
        "hier": hier,
        "dense": cluster_matvec_dense,
        "ragged_dot": ragged,
        "tiles_gather": tiles_gather,
        "gather": per_sample_gather if s <= 2048 else None,
        "scan_autodiff": scan_autodiff,
        f"cluster_matvec[T={t_def}] (default)": cluster_matvec,
    }
    for t in (32, 64, 128):
        if t != t_def:
            ms[f"cluster_matvec[T={t}]"] = partial(cluster_matvec, tile_rows=t)
    return ms


# ----------------------------------------------------------------------------- timing
def _time(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))  # compile + warm
    if time.perf_counter() - t0 < 1.0:  # cheap: one more warm-up call
        jax.block_until_ready(fn(*args))
    ts = []
    t_start = time.perf_counter()
    while len(ts) < MAX_REPS:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
        if len(ts) >= MIN_REPS and time.perf_counter() - t_start > TIME_PER_CASE_S:
            break
    ts = np.asarray(ts) * 1e3
    return float(np.median(ts)), float(np.min(ts)), len(ts)


def main():
    print(f"jax {jax.__version__}, devices {jax.devices()}, D={D} n={N} K={K} float32")
    rng = np.random.default_rng(0)
    V = jnp.asarray(0.1 * rng.standard_normal((K - 1, D, N)), jnp.float32)
    results = {}
    for s in SIZES:
        y = jnp.asarray(rng.random((s, N)) < 0.5, jnp.float32)
        k = jnp.asarray(rng.integers(0, K, s), jnp.int32)
        cot = jnp.asarray(rng.standard_normal((s, D)), jnp.float32)
        ref = jax.jit(cluster_matvec_dense)(V, y, k)
        rows = {}
        print(f"\nS={s}  (default tile rows {default_tile_rows(s, K)})")
        print(
            f"{'method':34s} {'fwd med':>9s} {'fwd min':>9s} {'xhier':>6s} "
            f"{'f+b med':>9s} {'f+b min':>9s} {'xhier':>6s} {'max|err|':>9s}"
        )
        for name, fn in methods_for(s).items():
            if fn is None:
                print(f"{name:34s} skipped ((S, D, n) intermediate is {s * D * N * 4 / 2**30:.1f} GiB)")
                continue
            fwd = jax.jit(fn)
            fb = jax.jit(jax.grad(lambda V, y, k, fn=fn, cot=cot: jnp.sum(fn(V, y, k) * cot), argnums=(0, 1)))
            err = 0.0 if name == "hier" else float(jnp.max(jnp.abs(fwd(V, y, k) - ref)))
            f_med, f_min, _ = _time(fwd, V, y, k)
            b_med, b_min, _ = _time(fb, V, y, k)
            rows[name] = dict(
                fwd_ms=round(f_med, 2),
                fwd_min_ms=round(f_min, 2),
                fwdbwd_ms=round(b_med, 2),
                fwdbwd_min_ms=round(b_min, 2),
                max_abs_err=err,
            )
            h = rows["hier"]
            print(
                f"{name:34s} {f_med:9.2f} {f_min:9.2f} {f_med / h['fwd_ms']:6.1f} "
                f"{b_med:9.2f} {b_min:9.2f} {b_med / h['fwdbwd_ms']:6.1f} {err:9.1e}",
                flush=True,
            )
        h = rows["hier"]
        for r in rows.values():
            r["fwd_ratio_hier"] = round(r["fwd_ms"] / h["fwd_ms"], 2)
            r["fwdbwd_ratio_hier"] = round(r["fwdbwd_ms"] / h["fwdbwd_ms"], 2)
        results[f"S={s}"] = rows
        best = f"cluster_matvec[T={default_tile_rows(s, K)}] (default)"
        d, c = rows["dense"], rows[best]
        print(
            f"cluster_matvec vs dense: fwd {d['fwd_ms'] / c['fwd_ms']:.1f}x faster, "
            f"fwd+bwd {d['fwdbwd_ms'] / c['fwdbwd_ms']:.1f}x faster"
        )
    print(
        json.dumps(
            {"benchmark": "cluster_matvec", "D": D, "n": N, "K": K, "device": str(jax.devices()[0]), "results": results}
        )
    )


if __name__ == "__main__":
    main()
