"""Where the real training step's time goes: XLA's own per-operation trace, grouped into pieces.

Compiles the scan chunk that `benchmarks/step_time.py` times (same shapes and flags), runs it
once warm, then two chunks under `jax.profiler`, reads the trace and adds each executed XLA
operation's time to a piece of the step by what it computes: its source location in the JAX
program and its shape (e.g. `(B·S, D)` arrays belong to `r(z)` at the posterior samples,
`(M, D)` ones to the conjugation term). These are the pieces of the step as it really runs,
after XLA's fusion. Times are per step and summed over the threads that ran them, so on a
shared CPU read them as shares. The compiled chunk's own cost analysis (XLA's FLOP and byte
counts, which do not move with the load; a `while` loop's body is counted once) and its wall
time per step are printed with them.

    python benchmarks/profile_step.py [--block hierarchical|full] [--chunk 5] [--top N]
        [--batch-size 512] [--n-latent 128] [--n-clusters 30] [--data-dim 784]

`--top N` also lists the N slowest operations. Ends with one JSON line
`{"block": ..., "pieces_ms": {...}, "operations_ms": ..., "step_s": ..., "gflop": ..., "mb_accessed": ...}`.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax

sys.path.insert(0, str(Path(__file__).parent))
from step_time import SEED_SHAPES, SEED_TRAIN, make_runner

OTHER = "other (small tensors, parameter-sized elementwise, loop control)"


def op_table(hlo_text: str) -> dict[str, tuple[str, str]]:
    """`{HLO instruction name: (result shape, JAX op_name)}` of a compiled program's text."""
    table: dict[str, tuple[str, str]] = {}
    for line in hlo_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        if match and match.group(1) not in table:
            op_name = re.search(r'op_name="([^"]*)"', line)
            table[match.group(1)] = (match.group(2), op_name.group(1) if op_name else "")
    return table


def piece(shape: str, op_name: str, sizes: dict[str, int]) -> str:
    """The piece of the step an operation belongs to, from its result shape and its source op."""
    B, S, M = sizes["batch_size"], sizes["n_mc_samples"], sizes["n_conj_samples"]
    D, n, K = sizes["data_dim"], sizes["n_latent"], sizes["n_clusters"]
    bracket = re.search(r"\[([\d,]*)\]", shape)
    dims = [int(d) for d in bracket.group(1).split(",") if d] if bracket else []
    op_name = re.sub(r"cond/branch_\d+_fun/", "", op_name)  # the CPU branch of platform_dependent
    if "transpose(jvp())/while/body/closed_call/" in op_name:
        return "xyk adjoint for η_q, backward (dV_j = Xᵀ G_j per cluster)"
    if "transpose(jvp())/while" in op_name or "jvp()/while" in op_name:
        return "grouped product at sampled clusters, its pieces (fwd+bwd)"
    if B * S + M in dims and D in dims:
        return "r(z) at the B·S + M states of elbo and conjugation, one call (full model)"
    if any(d in dims for d in (B * S, B * S + 64)) and D in dims:
        return "r(z) at the B·S posterior samples: θ_X, ψ_X fwd+bwd"
    if any(M <= d <= M + 64 for d in dims) and D in dims:
        return "conjugation term: r(z) at the M prior samples"
    if any(word in op_name for word in ("_bernoulli", "_uniform", "threefry", "random")):
        return "random draws (Bernoulli, categorical, batch index)"
    if dims[:2] == [B, S] or dims == [B * S]:
        return "per-sample (B×S) work: ψ_X row sums, log q, sampling gathers"
    if dims and dims[0] == B and (K - 1 in dims or K in dims):
        return "cluster logits, ψ_Z, q(k|x), KL means, entropies (B×n×K)"
    if dims in ([K - 1, D, n], [(K - 1) * n, D], [D, (K - 1) * n]):
        return "xyk parameter-sized work (adjoint grad, Adam on V, finite check)"
    if dims and dims[0] == B and (D in dims or n in dims):
        return "posterior η_q(x) = Wᵀx (+ adjoints), data batch"
    if any(word in op_name for word in ("adam", "select", "is-finite", "is_finite")):
        return "optimiser + finite check"
    return OTHER


def cost(program: Any) -> tuple[float, float]:
    """`(FLOPs, bytes accessed)` of a compiled program by XLA's count, 0 where XLA does not say."""
    analysis = program.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def traced_events(run: Any, calls: int) -> list[dict[str, Any]]:
    """The trace events of `calls` calls of `run` under `jax.profiler`."""
    with tempfile.TemporaryDirectory(prefix="expfam_trace_") as directory:
        jax.profiler.start_trace(directory)
        for _ in range(calls):
            run()
        jax.profiler.stop_trace()
        paths = sorted(glob.glob(f"{directory}/**/*.trace.json.gz", recursive=True))
        if not paths:
            raise SystemExit(f"jax.profiler wrote no *.trace.json.gz under {directory}; is jax's profiler installed?")
        with gzip.open(paths[-1]) as handle:
            events: list[dict[str, Any]] = json.load(handle)["traceEvents"]
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", default="hierarchical", help="block set to profile")
    parser.add_argument("--chunk", type=int, default=5, help="steps per scan chunk (two chunks are traced)")
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest operations")
    parser.add_argument("--batch-size", type=int, default=SEED_TRAIN["batch_size"])
    parser.add_argument("--n-latent", type=int, default=SEED_SHAPES["n_latent"])
    parser.add_argument("--n-clusters", type=int, default=SEED_SHAPES["n_clusters"])
    parser.add_argument("--data-dim", type=int, default=SEED_SHAPES["data_dim"])
    args = parser.parse_args(argv)
    if args.chunk < 1:
        parser.error(f"--chunk must be at least 1, got {args.chunk}")
    shapes = {**SEED_SHAPES, "n_latent": args.n_latent, "n_clusters": args.n_clusters, "data_dim": args.data_dim}
    train = {**SEED_TRAIN, "batch_size": args.batch_size}
    runner = make_runner(args.block, args.chunk, shapes, train)
    runner.run()  # warm
    started = time.perf_counter()
    runner.run()
    step_s = (time.perf_counter() - started) / args.chunk
    table = op_table(runner.program.as_text())
    steps = 2 * args.chunk
    totals: collections.Counter[str] = collections.Counter()
    per_op: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for event in traced_events(runner.run, 2):
        if event.get("ph") == "X" and event.get("name") in table:
            shape, op_name = table[event["name"]]
            if shape.startswith("(") and "while" in event["name"]:
                continue  # a loop's own span contains its body's operations
            totals[piece(shape, op_name, {**shapes, **train})] += event["dur"] / 1e3 / steps
            per_op[(event["name"], shape, op_name)] += event["dur"] / 1e3 / steps
    whole = sum(totals.values())
    flops, nbytes = cost(runner.program)
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}; block set {args.block}; shapes {shapes}")
    print(f"step: {step_s:.4f} s wall; XLA's count (loop bodies once, so about one step): ", end="")
    print(f"{flops / 1e9:.3f} GFLOP, {nbytes / 1e6:.1f} MB accessed")
    print("XLA operation time per step, summed over threads:")
    print("| piece | ms/step | share |\n|---|---|---|")
    for name, ms in totals.most_common():
        print(f"| {name} | {ms:.1f} | {100 * ms / max(whole, 1e-12):.0f}% |")
    print(f"| all operations | {whole:.1f} | 100% |")
    for (name, shape, op_name), ms in per_op.most_common(args.top):
        print(f"{ms:6.2f} ms  {piece(shape, op_name, {**shapes, **train})[:24]:24}  {name}  {shape}  {op_name[-110:]}")
    summary = {
        "block": args.block,
        "pieces_ms": dict(totals.most_common()),
        "operations_ms": whole,
        "step_s": step_s,
        "gflop": flops / 1e9,
        "mb_accessed": nbytes / 1e6,
        **{key: shapes[key] for key in ("data_dim", "n_latent", "n_clusters")},
        "batch_size": args.batch_size,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
