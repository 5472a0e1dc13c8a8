"""Where the real training step's time goes: XLA's own per-operation trace, grouped into pieces.

Runs two warm scan chunks of the compiled step under ``jax.profiler``, reads the
trace, and sums each executed XLA operation's time into a piece of the step by
what it computes (its source location in the JAX program and its shape, e.g.
``(B·S, D)`` arrays belong to ``r(z)`` at the posterior samples, ``(M, D)`` ones
to the conjugation term). The pieces are therefore those of the step as it
really runs, after XLA's fusion and common-subexpression elimination, unlike
``profile_step.py`` which times each piece compiled on its own. Times are
per step; on a shared CPU they move with the load, so read them as shares.

    python benchmarks/trace_step.py [--block hierarchical|full] [--chunk 5]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from expfam.builder import build_model
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.chunks import make_chunk
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state, step_numbers
from step_time import SEED_SHAPES, SEED_TRAIN, make_runner


def op_table(block: str, chunk_length: int) -> dict[str, tuple[str, str]]:
    """``{HLO instruction name: (result shape, JAX op_name)}`` of the compiled chunk."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": SEED_SHAPES["n_trials"]},
        data_dim=SEED_SHAPES["data_dim"],
        n_latent=SEED_SHAPES["n_latent"],
        n_clusters=SEED_SHAPES["n_clusters"],
        blocks=block,
    )
    data = jnp.zeros((4096, SEED_SHAPES["data_dim"]))
    config = dataclasses.replace(TrainConfig(), **SEED_TRAIN)
    params = model.init(jax.random.PRNGKey(0), data)
    state = initial_state(params, config, make_optimizer(config))
    text = make_chunk(model, config).lower(state, data, step_numbers(config), length=chunk_length).compile().as_text()
    table: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
        if match and match.group(1) not in table:
            op_name = re.search(r'op_name="([^"]*)"', line)
            table[match.group(1)] = (match.group(2), op_name.group(1) if op_name else "")
    return table


def piece(shape: str, op_name: str) -> str:
    """The piece of the step an operation belongs to, from its shape and source op."""
    B, S, M = SEED_TRAIN["batch_size"], SEED_TRAIN["n_mc_samples"], SEED_TRAIN["n_conj_samples"]
    D, n, K = SEED_SHAPES["data_dim"], SEED_SHAPES["n_latent"], SEED_SHAPES["n_clusters"]
    bracket = re.search(r"\[([\d,]*)\]", shape)
    dims = [int(d) for d in bracket.group(1).split(",") if d] if bracket else []
    op_name = re.sub(r"cond/branch_\d+_fun/", "", op_name)  # the CPU branch of platform_dependent
    if "transpose(jvp())/while/body/closed_call/" in op_name:
        return "xyk adjoint for η_q, backward (dV_j = Xᵀ G_j per cluster)"
    if "transpose(jvp())/while" in op_name or "jvp()/while" in op_name:
        return "grouped product at sampled clusters, its pieces (fwd+bwd)"
    if B * S + M in dims and D in dims:
        return "r(z) at the 5120 + 1024 states of elbo and conjugation, one call (full model)"
    if any(d in dims for d in (B * S, B * S + 64)) and D in dims:
        return "r(z) at 5120 posterior samples: θ_X, ψ_X fwd+bwd"
    if any(d >= M and d <= M + 64 for d in dims) and D in dims:
        return "conjugation term: r(z) at 1024 prior samples"
    if "_bernoulli" in op_name or "_uniform" in op_name or "threefry" in op_name or "random" in op_name:
        return "random draws (Bernoulli, categorical, batch index)"
    if dims[:2] == [B, S] or dims == [B * S]:
        return "per-sample (B×S) work: ψ_X row sums, log q, sampling gathers"
    if dims and dims[0] == B and (K - 1 in dims or K in dims):
        return "cluster logits, ψ_Z, q(k|x), KL means, entropies (B×n×K)"
    if dims == [K - 1, D, n] or dims == [(K - 1) * n, D] or dims == [D, (K - 1) * n]:
        return "xyk parameter-sized work (adjoint grad, Adam on V, finite check)"
    if dims and dims[0] == B and (D in dims or n in dims):
        return "posterior η_q(x) = Wᵀx (+ adjoints), data batch"
    if "adam" in op_name or "select" in op_name or "is-finite" in op_name or "is_finite" in op_name:
        return "optimiser + finite check"
    return "other (small tensors, parameter-sized elementwise, loop control)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", default="hierarchical")
    parser.add_argument("--chunk", type=int, default=5)
    parser.add_argument("--top", type=int, default=0, help="also list the N slowest operations")
    args = parser.parse_args()
    run = make_runner(args.block, args.chunk, dict(SEED_SHAPES), dict(SEED_TRAIN))
    run()
    directory = tempfile.mkdtemp(prefix="expfam_trace_")
    jax.profiler.start_trace(directory)
    run()
    run()
    jax.profiler.stop_trace()
    path = sorted(glob.glob(f"{directory}/**/*.trace.json.gz", recursive=True))[-1]
    with gzip.open(path) as handle:
        events = json.load(handle)["traceEvents"]
    table = op_table(args.block, args.chunk)
    steps = 2 * args.chunk
    totals: collections.Counter[str] = collections.Counter()
    per_op: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("name") in table:
            shape, op_name = table[event["name"]]
            if shape.startswith("(") and "while" in event["name"]:
                continue  # a loop's own span contains its body's operations
            totals[piece(shape, op_name)] += event["dur"] / 1e3 / steps
            per_op[(event["name"], shape, op_name)] += event["dur"] / 1e3 / steps
    whole = sum(totals.values())
    print(f"device: {jax.devices()[0].device_kind}; block set {args.block}; XLA op time per step, summed over threads")
    print("| piece | ms/step | share |\n|---|---|---|")
    for name, ms in totals.most_common():
        print(f"| {name} | {ms:.1f} | {100 * ms / whole:.0f}% |")
    print(f"| all operations | {whole:.1f} | 100% |")
    for (name, shape, op_name), ms in per_op.most_common(args.top):
        print(f"{ms:6.2f} ms  {piece(shape, op_name)[:24]:24}  {name}  {shape}  {op_name[-110:]}")


if __name__ == "__main__":
    main()
