"""Experiment: restarts of the hierarchical model kept by ELBO (no labels), on a validation split.

For each seed ``s = 0..S−1`` the main job's configuration with ``--set KEY=VALUE``
overrides is trained ``R`` times on 80% of the seed's training split
(``validation_fraction = 0.2``; the test split is not looked at), restart ``r`` with
seed ``s + 1000 r`` for its initialisation and training streams (the split stays
seed ``s``'s). Each restart's validation NMI and its ELBO (10 posterior samples,
β = 1) on the training rows and on the validation rows are printed, then, for
``R' = 1..R``, the NMI of the restart with the highest ELBO among the first ``R'``
(the ``n_init`` of scikit-learn's mixtures, selected without labels).

Run: ``python examples/experiments/hierarchical_restarts.py [--seeds 3] [--restarts 4] [--set n_latent=64 ...]``;
the last line is JSON ``{"runs": [...], "kept": {"train": {R': [NMI per seed]}, "validation": {...}}}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.experiment.evaluation import assignments, compiled_method, in_batches
from expfam.experiment.prepare import prepare_run
from expfam.experiment.train.loop import train
from expfam.experiment.train.streams import run_keys
from expfam.metrics import clustering_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
run_config = importlib.import_module("quality").run_config  # benchmarks/quality.py: the block set's defaults + --set


def mean_elbo(elbo: Any, key: Any, params: Any, x: np.ndarray) -> float:
    """The mean Monte-Carlo ELBO (β = 1) of the rows of ``x``."""
    return float(np.mean(in_batches(lambda batch: elbo(key, params, batch)[1], x)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..S−1)")
    parser.add_argument("--restarts", type=int, default=4, help="restarts R per seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args(argv)
    runs: list[dict[str, float]] = []
    for seed in range(args.seeds):
        config = run_config("hierarchical", seed, {"validation_fraction": 0.2}, args.set)
        prepared = prepare_run(config)
        model, split = prepared.model, prepared.split
        assert split.y_test is not None, "the validation NMI needs labelled data"
        elbo = compiled_method(model, "elbo_terms", 10)
        key = jax.random.key(7)
        for restart in range(args.restarts):
            restart_seed = seed + 1000 * restart
            train_config = dataclasses.replace(config.train, seed=restart_seed)
            params = model.init(run_keys(restart_seed)["init"], jnp.asarray(split.x_train))
            trained = train(model, params, jnp.asarray(split.x_train), train_config).params
            scores = clustering_metrics(split.y_test, assignments(model, trained, split.x_test), model.n_clusters)
            row = {
                "seed": seed,
                "restart": restart,
                "nmi": scores["nmi"],
                "active_clusters": scores["active_clusters"],
                "elbo_train": mean_elbo(elbo, key, trained, split.x_train),
                "elbo_validation": mean_elbo(elbo, key, trained, split.x_test),
            }
            print(json.dumps(row), flush=True)
            runs.append(row)
    kept: dict[str, dict[int, list[float]]] = {"train": {}, "validation": {}}
    for rows in ("train", "validation"):
        for count in range(1, args.restarts + 1):
            kept[rows][count] = []
            for seed in range(args.seeds):
                first = [run for run in runs if run["seed"] == seed and run["restart"] < count]
                best = max(first, key=lambda run: run[f"elbo_{rows}"])
                kept[rows][count].append(best["nmi"])
            nmis = kept[rows][count]
            print(
                f"kept by {rows} ELBO of {count}: NMI {', '.join(f'{v:.4f}' for v in nmis)}; mean {np.mean(nmis):.4f}"
            )
    print(json.dumps({"settings": args.set, "runs": runs, "kept": kept}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
