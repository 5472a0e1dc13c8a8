"""Experiment: why the full model stays at its start, one suspected cause at a time (docs/coupling.md).

Trains the ``full`` block set's defaults (and, for comparison, the ``hierarchical`` ones) on the
MNIST dev set, each variant changing one thing (:data:`VARIANTS`), and records after every chunk
of ``--log-every`` steps, on the evaluation rows (the validation split with ``--validation``, the
default; the test split with ``--test``):

* ``nmi`` and ``active`` — NMI of ``argmax_k q(k|x)`` against the digit labels, clusters in use;
* ``q_entropy`` — the mean over points of the posterior entropy ``H(q(·|x))`` (0: hard assignments);
* ``drift_nmi`` — NMI between the step-t assignment and the start's (1: the partition has not
  moved from its start; the start is step 0's KMeans partition for ``cluster_init = "kmeans"``,
  the first row after ``cluster_init_step`` for ``"latent_kmeans"``); ``moved`` — the share of points whose cluster changed in the chunk;
* per block ``b`` (``xy``, ``xyk``, ``xk``) — ``step_b = ‖θ_t − θ_{t−1}‖`` (the chunk's update),
  ``cos_b`` = the cosine between this chunk's update and the previous one (direction kept: near 1,
  noise: near 0), ``from0_b = ‖θ_t − θ_0‖ / ‖θ_0‖`` (how far from the start; ‖θ‖ when θ_0 = 0).

Each run writes ``OUT/<variant>-s<seed>.csv`` (one row per chunk); a finished CSV is read back
instead of retrained. Prints one table row per run (at the last step) and a final JSON line.

Run (make the dev set first, see examples/experiments/make_mnist_dev.py)::

    python examples/experiments/coupling_mechanism.py --data data/mnist_dev.npz --steps 6000 --seeds 2 \
        --out runs/coupling_mechanism
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.experiment.config import RunConfig, config_from_mapping, default_config
from expfam.experiment.evaluation import responsibilities
from expfam.experiment.prepare import prepare_run
from expfam.experiment.train.cluster_start import apply_cluster_init
from expfam.experiment.train.loop import train
from expfam.experiment.train.streams import run_keys
from expfam.metrics import normalized_mutual_information

#: Each variant: the block set and the overrides of its defaults (one suspected cause each).
VARIANTS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "hierarchical": ("hierarchical", {}),
    "full": ("full", {}),
    "full_cluster_lr_x3": ("full", {"train": {"block_learning_rates": "xyk:3,xk:3"}}),
    "full_cluster_lr_x0.3": ("full", {"train": {"block_learning_rates": "xyk:0.3,xk:0.3"}}),
    "full_no_conjugation": ("full", {"train": {"conj_weight": 0.0}}),
    "full_rao_blackwell": ("full", {"train": {"elbo_estimator": "rao_blackwell_elbo"}}),
    "full_random_start_schedule": (
        "full",
        {"train": {"cluster_init": "random", "block_schedule": "xyk:1000,xk:1000"}},
    ),
    # remedy candidates
    "full_latent_kmeans_schedule": (
        "full",
        {"train": {"cluster_init": "latent_kmeans", "cluster_init_step": 1000, "block_schedule": "xyk:1000,xk:1000"}},
    ),
    "full_n_latent_128": ("full", {"model": {"n_latent": 128}}),
    "full_posterior_entropy_10": ("full", {"train": {"posterior_entropy_weight": 10.0}}),
    "full_cluster_lr_x10": ("full", {"train": {"block_learning_rates": "xyk:10,xk:10"}}),
    # the KMeans start's partition replaced by spectral clustering's (cluster_init = "spectral")
    "full_spectral_start": ("full", {"train": {"cluster_init": "spectral"}}),
    "full_spectral_lr_x3": ("full", {"train": {"cluster_init": "spectral", "block_learning_rates": "xyk:3,xk:3"}}),
    "full_spectral_lr_x10": ("full", {"train": {"cluster_init": "spectral", "block_learning_rates": "xyk:10,xk:10"}}),
    "full_spectral_lr_x3_n128": (
        "full",
        {"model": {"n_latent": 128}, "train": {"cluster_init": "spectral", "block_learning_rates": "xyk:3,xk:3"}},
    ),
}


def variant_config(variant: str, seed: int, data: str, steps: int, log_every: int, validation: bool) -> RunConfig:
    """The block set's defaults with the variant's overrides, on the ``npz`` file ``data``."""
    block, overrides = VARIANTS[variant]
    mapping: dict[str, dict[str, Any]] = {section: dict(values) for section, values in overrides.items()}
    mapping.setdefault("train", {}).update({"seed": seed, "n_steps": steps, "log_every": log_every})
    mapping["data"] = {"dataset": "npz", "data": data, "validation_fraction": 0.2 if validation else 0.0}
    return config_from_mapping(mapping, default_config(block))


def _flat(tree: Any) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(tree)])


class Recorder:
    """The per-chunk diagnostics of one run (see the module docstring for the columns)."""

    def __init__(self, config: RunConfig) -> None:
        self.prepared = prepare_run(config)
        self.model = self.prepared.model
        split = self.prepared.split
        if split.y_test is None:
            raise SystemExit("the dev set has no labels; NMI needs y_train and y_test in the .npz")
        self.x, self.y = split.x_test, split.y_test
        self.config = config
        self.params0 = self.model.init(run_keys(config.train.seed)["init"], jnp.asarray(split.x_train))
        # the parameters the first step sees: the KMeans start is applied before it ("kmeans")
        started = apply_cluster_init(self.model, config.train, self.params0, jnp.asarray(split.x_train), 0)
        self.blocks = list(started["likelihood"]["blocks"])
        self.start = {b: _flat(started["likelihood"]["blocks"][b]) for b in self.blocks}
        self.previous = dict(self.start)
        self.previous_step: dict[str, np.ndarray | None] = {b: None for b in self.blocks}
        self.assign0 = self.assign_and_q(started)[0]
        self.last_assign = self.assign0
        self.rows: list[dict[str, float]] = [self.row(0, started)]

    def assign_and_q(self, params: Any) -> tuple[np.ndarray, np.ndarray]:
        q = responsibilities(self.model, params, self.x)
        return q.argmax(axis=1), q

    def row(self, step: int, params: Any) -> dict[str, float]:
        assign, q = self.assign_and_q(params)
        entropy = -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=1)
        row: dict[str, float] = {
            "step": float(step),
            "nmi": normalized_mutual_information(self.y, assign),
            "active": float(np.unique(assign).size),
            "q_entropy": float(entropy.mean()),
            "drift_nmi": normalized_mutual_information(self.assign0, assign),
            "moved": float(np.mean(assign != self.last_assign)),
        }
        self.last_assign = assign
        for block in self.blocks:
            now = _flat(params["likelihood"]["blocks"][block])
            update = now - self.previous[block]
            before = self.previous_step[block]
            norm0 = float(np.linalg.norm(self.start[block]))
            row[f"step_{block}"] = float(np.linalg.norm(update))
            row[f"cos_{block}"] = (
                float(update @ before / (np.linalg.norm(update) * np.linalg.norm(before)))
                if before is not None and np.linalg.norm(update) > 0 and np.linalg.norm(before) > 0
                else float("nan")
            )
            row[f"from0_{block}"] = float(np.linalg.norm(now - self.start[block]) / (norm0 if norm0 > 0 else 1.0))
            self.previous[block], self.previous_step[block] = now, update
        return row

    def callback(self, step: int, params: Any, piece: Mapping[str, np.ndarray]) -> None:
        train_config = self.config.train
        if (
            train_config.cluster_init == "latent_kmeans"
            and step == train_config.cluster_init_step + train_config.log_every
        ):
            # the prior's clusters were drawn at cluster_init_step: drift is measured from the first row after it
            self.assign0 = self.assign_and_q(params)[0]
        self.rows.append(self.row(step, params))
        elbo = piece.get("elbo")
        if elbo is not None:
            self.rows[-1]["elbo"] = float(np.mean(elbo))


def run(config: RunConfig, target: Path | None) -> list[dict[str, float]]:
    """Train one variant and return its rows (read back from ``target`` when that CSV exists)."""
    if target is not None and target.is_file():
        with target.open() as handle:
            return [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(handle)]
    recorder = Recorder(config)
    train(
        recorder.model,
        recorder.params0,
        jnp.asarray(recorder.prepared.split.x_train),
        config.train,
        callback=recorder.callback,
    )
    if target is not None:
        columns = list(dict.fromkeys(key for row in recorder.rows for key in row))
        partial = target.with_suffix(".csv.partial")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(recorder.rows)
        partial.replace(target)
    return recorder.rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the MNIST dev set (.npz)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--test", action="store_true", help="score on the test split (default: validation)")
    parser.add_argument("--out", type=Path, default=None, help="folder for one CSV per run")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, list[dict[str, float]]] = {}
    print(
        "| variant | seed | NMI at start | NMI at end | fewest active | active at end | H(q) | drift | "
        "moved in last chunk | U from start | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        for seed in range(args.seeds):
            config = variant_config(variant, seed, args.data, args.steps, args.log_every, not args.test)
            started = time.perf_counter()
            target = args.out / f"{variant}-s{seed}.csv" if args.out is not None else None
            rows = run(config, target)
            first, last = rows[0], rows[-1]
            summary.setdefault(variant, []).append(last)
            fewest = min(row["active"] for row in rows[1:]) if len(rows) > 1 else last["active"]
            u_moved = f"{last['from0_xk']:.2f}" if "from0_xk" in last else "–"
            print(
                f"| {variant} | {seed} | {first['nmi']:.3f} | {last['nmi']:.3f} | {fewest:.0f} | {last['active']:.0f} | "
                f"{last['q_entropy']:.3f} | {last['drift_nmi']:.3f} | {last['moved']:.3f} | {u_moved} | "
                f"{time.perf_counter() - started:.0f} |",
                flush=True,
            )
    print(
        json.dumps(
            {
                v: {
                    "nmi_mean": float(np.mean([r["nmi"] for r in rows])),
                    "drift_nmi_mean": float(np.mean([r["drift_nmi"] for r in rows])),
                }
                for v, rows in summary.items()
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
