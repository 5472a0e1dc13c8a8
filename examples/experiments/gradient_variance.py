"""Experiment: the ``elbo`` and ``rao_blackwell_elbo`` gradient estimators on digits.

Part ``variance``: trains the default configuration of a block set for
``--warm-steps`` steps (so the parameters are those of a model in training, not
of the initialisation), fixes one batch of ``--batch`` training images, and draws
``--repeats`` gradients of each estimator's β = 1 ELBO surrogate at those same
parameters with independent keys (``S = n_mc_samples``). Prints, per estimator, the
total variance ``Σ_coordinates Var_keys[∂surrogate]`` (and per parameter group),
the ratio RB / plain, the mean gradient's distance between the two (both are
unbiased, so it is noise), and the warm time of one gradient (jitted).

Part ``nmi``: trains the block set's default run once with each estimator
(same seeds, same data split) and prints the test NMI after every logged chunk.

Run: ``python examples/experiments/gradient_variance.py [--block hierarchical|full] [--part variance|nmi|both]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from expfam.experiment.config import RunConfig, config_from_mapping, default_config
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.solo import train_run
from expfam.experiment.train.loop import train
from expfam.experiment.train.streams import run_keys
from objectives.rao_blackwell import rao_blackwell_elbo_terms

ESTIMATORS = ("elbo", "rao_blackwell_elbo")


def _surrogate(model, estimator: str, n_samples: int):  # a closure for jit
    def value(params, x, key):
        if estimator == "elbo":
            return jnp.mean(model.elbo_terms(key, params, x, n_samples)[0])
        return jnp.mean(rao_blackwell_elbo_terms(model, key, params, x, n_samples)[0])

    return value


def variance_part(config: RunConfig, warm_steps: int, batch: int, repeats: int) -> dict[str, object]:
    """Gradient variance of both estimators at the parameters after ``warm_steps`` steps."""
    prepared = prepare_run(config)
    model, split = prepared.model, prepared.split
    x_train = jnp.asarray(split.x_train)
    params = model.init(run_keys(config.train.seed)["init"], x_train)
    if warm_steps > 0:
        warm = dataclasses.replace(config.train, n_steps=warm_steps, log_every=warm_steps)
        params = train(model, params, x_train, warm).params
    x = x_train[np.random.default_rng(0).choice(x_train.shape[0], batch, replace=False)]
    keys = jax.random.split(jax.random.key(123), repeats)
    out: dict[str, object] = {"block": config.model.block, "warm_steps": warm_steps, "batch": batch, "repeats": repeats}
    draws = {}
    gradients = {e: jax.jit(jax.grad(_surrogate(model, e, config.train.n_mc_samples))) for e in ESTIMATORS}
    times: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    for e in ESTIMATORS:
        jax.block_until_ready(gradients[e](params, x, keys[0]))
    for key in keys[:21]:  # interleaved, so both see the same machine load; median of 21
        for e in ESTIMATORS:
            started = time.perf_counter()
            jax.block_until_ready(gradients[e](params, x, key))
            times[e].append(time.perf_counter() - started)
    for estimator in ESTIMATORS:
        gradient = gradients[estimator]
        seconds = float(np.median(times[estimator]))
        stacked = [gradient(params, x, key) for key in keys]
        tree = jax.tree.map(lambda *leaves: np.stack([np.asarray(leaf) for leaf in leaves]), *stacked)
        draws[estimator] = tree
        groups = {
            "/".join(str(getattr(part, "key", part)) for part in path): float(leaf.var(axis=0).sum())
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        }
        out[estimator] = {"total_variance": sum(groups.values()), "by_group": groups, "seconds_per_gradient": seconds}
    plain, blackwell = out["elbo"], out["rao_blackwell_elbo"]
    responsibilities = np.asarray(model.cluster_responsibilities(params, x))
    out["mean_max_responsibility"] = float(responsibilities.max(axis=1).mean())
    out["variance_ratio"] = blackwell["total_variance"] / plain["total_variance"]  # type: ignore[index]
    out["time_ratio"] = blackwell["seconds_per_gradient"] / plain["seconds_per_gradient"]  # type: ignore[index]
    means = [np.concatenate([leaf.mean(axis=0).ravel() for leaf in jax.tree.leaves(draws[e])]) for e in ESTIMATORS]
    out["mean_gradient_relative_difference"] = float(np.linalg.norm(means[0] - means[1]) / np.linalg.norm(means[0]))
    return out


def nmi_part(config: RunConfig, seeds: int) -> dict[str, dict[int, list[float]]]:
    """Test NMI after every logged chunk, per estimator, for seeds ``0..seeds−1``."""
    curves: dict[str, dict[int, list[float]]] = {}
    for estimator in ESTIMATORS:
        curves[estimator] = {}
        for seed in range(seeds):
            train_config = dataclasses.replace(config.train, elbo_estimator=estimator, seed=seed)
            rows: list[tuple[int, float]] = []
            started = time.perf_counter()
            metrics = train_run(
                dataclasses.replace(config, train=train_config),
                None,
                plots=False,
                progress=lambda step, total, row: rows.append((step, row["nmi"])),  # noqa: B023
            )
            print(
                f"{estimator} seed {seed}: final NMI {metrics['nmi']:.3f} in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            curves[estimator][seed] = [nmi for _, nmi in rows] + [metrics["nmi"]]
            curves[estimator]["steps"] = [step for step, _ in rows]  # type: ignore[index]
    return curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", default="hierarchical")
    parser.add_argument("--part", choices=("variance", "nmi", "both"), default="both")
    parser.add_argument("--warm-steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the NMI-vs-steps part")
    parser.add_argument("--log-every", type=int, default=1000, help="steps between NMI points")
    args = parser.parse_args(argv)
    config = config_from_mapping({"train": {"log_every": args.log_every}}, default_config(args.block))

    if args.part in ("variance", "both"):
        result = variance_part(config, args.warm_steps, args.batch, args.repeats)
        print(f"## Gradient variance, {args.block}, after {args.warm_steps} steps, batch {args.batch}")
        plain, blackwell = result["elbo"], result["rao_blackwell_elbo"]
        print("| parameters | Var elbo | Var rao_blackwell_elbo | ratio |")
        print("|---|---|---|---|")
        for group, value in plain["by_group"].items():  # type: ignore[index]
            other = blackwell["by_group"][group]  # type: ignore[index]
            print(f"| {group} | {value:.4g} | {other:.4g} | {other / value if value else float('nan'):.3f} |")
        print(
            f"| total | {plain['total_variance']:.4g} | {blackwell['total_variance']:.4g} "  # type: ignore[index]
            f"| {result['variance_ratio']:.3f} |"
        )
        print(
            f"s / gradient (median of 21, jitted): elbo {plain['seconds_per_gradient']:.4f}, "  # type: ignore[index]
            f"rao_blackwell_elbo {blackwell['seconds_per_gradient']:.4f}"  # type: ignore[index]
        )
        print(f"mean over the batch of max_k q(k | x): {result['mean_max_responsibility']:.4f}")
        print(f"variance ratio RB/plain {result['variance_ratio']:.3f}, time ratio {result['time_ratio']:.2f}")
        print(json.dumps({"benchmark": "gradient_variance", **result}))
    if args.part in ("nmi", "both"):
        curves = nmi_part(config, args.seeds)
        steps = curves[ESTIMATORS[0]].pop("steps")  # type: ignore[arg-type]
        curves[ESTIMATORS[1]].pop("steps")  # type: ignore[arg-type]
        print(f"## Test NMI against steps, {args.block}, seeds 0..{args.seeds - 1} (mean)")
        header = [str(step) for step in steps] + ["final"]
        print("| estimator | " + " | ".join(header) + " |")
        print("|---|" + "---|" * len(header))
        for estimator in ESTIMATORS:
            values = np.mean(np.array([curves[estimator][seed] for seed in range(args.seeds)]), axis=0)
            print(f"| {estimator} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        print(json.dumps({"benchmark": "nmi_vs_steps", "block": args.block, "steps": steps, "curves": curves}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
