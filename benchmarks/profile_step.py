"""Where a training step's time goes: each piece of the step timed on its own, with its work.

Every piece is one jitted function at the reference MNIST shapes (``benchmarks/step_time.py``):
784 Binomial(16) pixels, n_latent 128, K 30, batch 512, 10 posterior samples, 1024
prior samples. "fwd" times the value, "grad" the value and its gradient with respect to
the parameters (samples are stop-gradient, as in training). FLOPs and bytes are XLA's own
count for the compiled piece (``compiled.cost_analysis()``); ``GFLOP/s`` is FLOPs over
the median time. Pieces share one process and run interleaved, so the machine's load
hits all of them alike; compare them as ratios. The last rows time the whole step
(one scanned chunk divided by its length) for reference.

    python benchmarks/profile_step.py [--block hierarchical|full|both] [--repeats 15]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from expfam.builder import build_model
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.chunks import make_chunk
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state, step_numbers
from expfam.model import Harmonium

SEED_TRAIN = {"batch_size": 512, "n_mc_samples": 10, "n_conj_samples": 1024, "kl_warmup_steps": 120_000}
sg = jax.lax.stop_gradient


def cost(compiled: Any) -> tuple[float, float]:
    """``(flops, bytes accessed)`` of a compiled function, 0 where XLA does not say."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def pieces(model: Harmonium, params: Any, x: Any, key: Any) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Named ``(function, arguments)`` pairs, one per piece of the step."""
    S, M = SEED_TRAIN["n_mc_samples"], SEED_TRAIN["n_conj_samples"]
    posterior = model.posterior_params(params, x)
    y, k = sg(model.sample_posterior(key, sg(posterior), S))

    def grad_of(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda p, *a: jax.grad(lambda q: jnp.sum(f(q, *a) ** 2))(p)

    def post(p: Any, x: Any) -> Any:
        return sum(jnp.sum(v**2) for v in model.posterior_params(p, x).values())

    def residual(p: Any, x: Any, y: Any, k: Any) -> Any:
        return model.batch_residual(p, y, k)

    # Pieces downstream of η_q(x) take it as an input (differentiated along with the
    # parameters), so their rows do not include the posterior's own cost.
    def log_q(pq: Any, y: Any, k: Any) -> Any:
        return model.batch_posterior_log_density(model.summarise_posterior(pq[1]), y, k)

    def kl(pq: Any, x: Any) -> Any:
        return model.posterior_kl(pq[0], x, pq[1])

    def entropies(pq: Any) -> Any:
        average = jnp.mean(model.summarise_posterior(pq[1]).responsibilities, axis=0)
        return model.mixture.cluster_entropy(pq[0]["prior"]) + jnp.sum(average * jnp.log(average))

    def baseline(pq: Any, x: Any) -> Any:
        return model.baseline(pq[0], x, pq[1])

    def summary(pq: Any) -> Any:
        return model.summarise_posterior(pq[1]).log_partition

    def sample_q(post: Any, key: Any) -> Any:
        return model.sample_posterior(key, post, S)

    def conj(p: Any, key: Any) -> Any:
        return model.prior_residual_variance(key, p, M)

    both = (params, posterior)
    out: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        "posterior η_q(x) fwd": (post, (params, x)),
        "posterior η_q(x) grad": (jax.grad(post), (params, x)),
        "cluster logits, ψ_Z, q(k|x) grad": (grad_of(summary), (both,)),
        "sample q(z|x) (k + 655k Bernoulli)": (sample_q, (posterior, key)),
        "r(z) 5120 samples fwd": (residual, (params, x, y, k)),
        "r(z) 5120 samples grad": (grad_of(residual), (params, x, y, k)),
        "log q(z|x) grad": (grad_of(log_q), (both, y, k)),
        "c(x) baseline grad": (grad_of(baseline), (both, x)),
        "KL(q‖p) grad": (grad_of(kl), (both, x)),
        "entropies grad": (grad_of(entropies), (both,)),
        "sample p(z) (1024)": (lambda p, kk: model.sample_prior(kk, p, M), (params, key)),
        "conjugation Var_p r grad (incl. sampling)": (grad_of(conj), (params, key)),
    }
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def adam(g: Any, s: Any, p: Any) -> Any:
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    def finite(p: Any, s: Any) -> Any:
        leaves = [jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves((p, s))]
        return jnp.all(jnp.stack(leaves))

    out["Adam update"] = (adam, (params, state, params))
    out["finite check (params+state)"] = (finite, (params, state))
    flat_y, flat_k = y.reshape(-1, y.shape[-1]), k.reshape(-1)
    for block in model.blocks:
        out.update(block_pieces(block, params["likelihood"]["blocks"][block.name], flat_y, flat_k, x))
    return out


def block_pieces(
    block: Any, weights: Any, y: Any, k: Any, x: Any
) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """The ``xyk`` and ``xk`` work on its own: offsets at the 5120 sampled states, the ``xyk`` adjoint."""
    if block.name == "xyk":
        return {
            "xyk offset 5120 fwd": (block.offset, (weights, y, k)),
            "xyk offset 5120 grad V": (jax.grad(lambda V, a, b: jnp.sum(block.offset(V, a, b) ** 2)), (weights, y, k)),
            "xyk adjoint η_q fwd": (lambda V, s: block.adjoint(V, s)["W_yk"], (weights, x)),
            "xyk adjoint η_q grad V": (jax.grad(lambda V, s: jnp.sum(block.adjoint(V, s)["W_yk"] ** 2)), (weights, x)),
        }
    if block.name == "xk":
        return {
            "xk offset 5120 grad U": (jax.grad(lambda U, a, b: jnp.sum(block.offset(U, a, b) ** 2)), (weights, y, k))
        }
    return {}


def time_pieces(
    table: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], repeats: int
) -> dict[str, tuple[float, float, float]]:
    """``{name: (median ms, flops, bytes)}``; repetitions interleave the pieces."""
    compiled = {}
    for name, (fn, args) in table.items():
        lowered = jax.jit(fn).lower(*args)
        compiled[name] = (lowered.compile(), args)
        jax.block_until_ready(compiled[name][0](*args))
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(repeats):
        for name, (fn, args) in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: (1e3 * float(np.median(times[name])), *cost(compiled[name][0])) for name in table}


def whole_step(model: Harmonium, data: Any, repeats: int, length: int = 5) -> tuple[float, float, float]:
    """``(median ms per step, flops per step, bytes per step)`` of the real training chunk."""
    config = dataclasses.replace(TrainConfig(), **SEED_TRAIN)
    chunk = make_chunk(model, config)
    params = model.init(jax.random.PRNGKey(0), data)
    state = initial_state(params, config, make_optimizer(config))
    flops, nbytes = cost(chunk.lower(state, data, step_numbers(config), length=1).compile())
    state, _ = chunk(state, data, step_numbers(config), length=length)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, _ = chunk(state, data, step_numbers(config), length=length)
        jax.block_until_ready(state.params)
        times.append((time.perf_counter() - start) / length)
    return 1e3 * float(np.median(times)), flops, nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", default="both", choices=["hierarchical", "full", "both"])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    data = jax.random.binomial(jax.random.PRNGKey(1), 16, 0.2, (4096, 784)).astype(jnp.float32)
    x = data[: SEED_TRAIN["batch_size"]]
    blocks = ["hierarchical", "full"] if args.block == "both" else [args.block]
    for block in blocks:
        model = build_model(
            observable="binomial",
            observable_options={"n_trials": 16},
            data_dim=784,
            n_latent=128,
            n_clusters=30,
            blocks=block,
        )
        params = model.init(jax.random.PRNGKey(0), data)
        results = time_pieces(pieces(model, params, x, jax.random.PRNGKey(3)), args.repeats)
        results["whole step (scan chunk)"] = whole_step(model, data, max(3, args.repeats // 3))
        print(f"\n{block}")
        print("| piece | ms | GFLOP | MB moved | GFLOP/s |\n|---|---|---|---|---|")
        for name, (ms, flops, nbytes) in results.items():
            print(f"| {name} | {ms:.1f} | {flops / 1e9:.3f} | {nbytes / 1e6:.1f} | {flops / 1e6 / max(ms, 1e-9):.0f} |")


if __name__ == "__main__":
    main()
