"""Benchmark: clustering quality of the default digits run next to k-means.

Trains the default configuration (``RunConfig()``: bundled digits,
Binomial(64, 16), the default block set, sizes and schedule) through
:func:`expfam.experiment.runs.solo.train_run` into a temporary run directory, then fits
scikit-learn's ``KMeans(n_clusters=K, n_init=10)`` on the same training split
and scores both on the same test split with :func:`expfam.metrics.clustering_metrics`.
k-means' "recon" is the mean squared distance of a test point to its centroid,
in the same count units as the harmonium's reconstruction error.

Prints a table and ends with one JSON line.
Run: ``python benchmarks/digits_quality.py [--n-steps N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from expfam.experiment.config import RunConfig
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.solo import train_run
from expfam.experiment.runs.table import format_summary, summary_row
from expfam.metrics import clustering_metrics

COLUMNS = ("nmi", "purity", "accuracy", "ari", "active_clusters", "r2", "recon")


def _json_number(value: float) -> float | None:
    """NaN as ``null`` so the JSON line is strict JSON."""
    return None if isinstance(value, float) and math.isnan(value) else value


def kmeans_metrics(config: RunConfig) -> tuple[dict[str, float], float]:
    """KMeans on the run's training split, scored on its test split; and the seconds it took."""
    from sklearn.cluster import KMeans

    split = prepare_run(config).split
    started = time.perf_counter()
    kmeans = KMeans(n_clusters=config.model.n_clusters, n_init=10, random_state=config.train.seed)
    kmeans.fit(split.x_train)
    assigned = kmeans.predict(split.x_test)
    seconds = time.perf_counter() - started
    scores: dict[str, float] = dict(clustering_metrics(split.y_test, assigned, config.model.n_clusters))
    scores["recon"] = float(np.mean((split.x_test - kmeans.cluster_centers_[assigned]) ** 2))
    scores["r2"] = float("nan")
    return scores, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-steps", type=int, default=None, help="override the default number of steps")
    parser.add_argument("--keep", type=Path, default=None, help="write the run directory here instead of a temp dir")
    args = parser.parse_args(argv)

    config = RunConfig()
    if args.n_steps is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, n_steps=args.n_steps))

    with tempfile.TemporaryDirectory() as temporary:
        out = args.keep if args.keep is not None else Path(temporary) / "digits-default"
        started = time.perf_counter()
        metrics = train_run(
            config,
            out,
            overwrite=True,
            log=lambda text: print(text, file=sys.stderr, flush=True),
            progress=lambda step, total, row: print(
                f"  step {step}/{total} elbo {row['elbo']:.2f} nmi {row['nmi']:.3f} r2 {row['r2']:.3f}",
                file=sys.stderr,
                flush=True,
            ),
        )
        harmonium_seconds = time.perf_counter() - started
    kmeans, kmeans_seconds = kmeans_metrics(config)

    print(format_summary([summary_row(config, metrics, run="harmonium (default)")]))
    print()
    print(f"| method | {' | '.join(COLUMNS)} | seconds |")
    print("|" + "---|" * (len(COLUMNS) + 2))
    for name, scores, seconds in (
        (f"harmonium {config.model.block}", metrics, harmonium_seconds),
        (f"k-means (n_init=10, K={config.model.n_clusters})", kmeans, kmeans_seconds),
    ):
        cells = [f"{scores[c]:.0f}" if c == "active_clusters" else f"{scores[c]:.3f}" for c in COLUMNS]
        print(f"| {name} | {' | '.join(cells)} | {seconds:.1f} |")
    print(
        json.dumps(
            {
                "benchmark": "digits_quality",
                "config": {
                    "n_steps": config.train.n_steps,
                    "n_latent": config.model.n_latent,
                    "n_clusters": config.model.n_clusters,
                    "block": config.model.block,
                },
                "harmonium": {**{c: _json_number(metrics[c]) for c in COLUMNS}, "seconds": harmonium_seconds},
                "kmeans": {**{c: _json_number(kmeans[c]) for c in COLUMNS}, "seconds": kmeans_seconds},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
