"""Benchmark: clustering quality over seeds, harmoniums against KMeans and a Gaussian mixture.

For each seed ``s = 0..S−1`` (the seed also draws the data split of datasets that
split at random, e.g. digits), trains the hierarchical and the full model with
the main job's defaults for each block set
(:func:`expfam.experiment.config.default_config`) through
:func:`expfam.experiment.runs.solo.train_run`, and fits scikit-learn's
``KMeans(K, n_init=10)`` and ``GaussianMixture(K, covariance_type="diag")`` with
the same ``K`` on the same training split; all four are scored on the same test
split by :func:`expfam.metrics.clustering_metrics`. Prints one table of NMI,
purity, accuracy, ARI and active clusters (mean ± sd over seeds) and the wall time
(a harmonium's: data, compilation, training and evaluation), then one JSON line
``{"hierarchical": {"nmi_mean": ..., "nmi_sd": ..., ...}, "full": ..., "kmeans": ..., "gmm": ...}``.

``--methods`` runs a subset of the four (e.g. ``--methods hierarchical kmeans``).

Run: ``python benchmarks/quality.py [--seeds 3] [--dataset idx --data DIR] [--set KEY=VALUE ...]
[--methods hierarchical full kmeans gmm]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from expfam.experiment.config import RunConfig, config_from_mapping, config_to_mapping, default_config
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.solo import train_run
from expfam.metrics import clustering_metrics

METRICS = ("nmi", "purity", "accuracy", "ari", "active_clusters", "seconds")
METHODS = ("hierarchical", "full", "kmeans", "gmm")


def parse_value(text: str) -> object:
    """``"3"`` → 3, ``"1e-3"`` → 0.001, ``"true"`` → True, anything else stays text."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def run_config(block: str, seed: int, data: dict[str, object], overrides: Sequence[str]) -> RunConfig:
    """The block set's default configuration with the dataset, the seed and ``KEY=VALUE`` overrides."""
    base = default_config(block)
    mapping: dict[str, dict[str, object]] = {"data": dict(data), "train": {"seed": seed}}
    sections = config_to_mapping(base)
    for item in overrides:
        key, _, value = item.partition("=")
        section = next((name for name, keys in sections.items() if key in keys), None)
        if section is None:
            raise SystemExit(f"--set {item}: unknown key {key!r}")
        mapping.setdefault(section, {})[key] = parse_value(value)
    return config_from_mapping(mapping, base)


def baseline_scores(config: RunConfig, method: str) -> dict[str, float]:
    """KMeans or the diagonal Gaussian mixture on the run's training split, scored on its test split."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    split = prepare_run(config).split
    n_clusters, seed = config.model.n_clusters, config.train.seed
    started = time.perf_counter()
    if method == "kmeans":
        model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(split.x_train)
    else:
        model = GaussianMixture(n_components=n_clusters, covariance_type="diag", random_state=seed).fit(split.x_train)
    assigned = model.predict(split.x_test)
    scores: dict[str, float] = dict(clustering_metrics(split.y_test, assigned, n_clusters))
    scores["seconds"] = time.perf_counter() - started
    return scores


def harmonium_scores(config: RunConfig, log: Callable[[str], None]) -> dict[str, float]:
    """Train one run (no run directory) and return its test metrics and wall time."""
    started = time.perf_counter()
    metrics = dict(train_run(config, None, plots=False, log=log))
    metrics["seconds"] = time.perf_counter() - started
    return metrics


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def table(results: dict[str, list[dict[str, float]]], labels: dict[str, str]) -> str:
    """Markdown table, one row per method, ``mean ± sd`` cells."""
    lines = [
        "| method | NMI | purity | accuracy | ARI | active clusters | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, runs in results.items():
        cells = []
        for metric in METRICS:
            mean, sd = summarise([run[metric] for run in runs])
            digits = 1 if metric in ("active_clusters", "seconds") else 3
            cells.append(f"{mean:.{digits}f} ± {sd:.{digits}f}")
        lines.append(f"| {labels[method]} | {' | '.join(cells)} |")
    return "\n".join(lines)


def json_line(results: dict[str, list[dict[str, float]]]) -> str:
    """``{method: {metric_mean, metric_sd, ...}}`` (NaN as null)."""
    summary: dict[str, dict[str, float | None]] = {}
    for method, runs in results.items():
        summary[method] = {}
        for metric in METRICS:
            mean, sd = summarise([run[metric] for run in runs])
            summary[method][f"{metric}_mean"] = None if math.isnan(mean) else mean
            summary[method][f"{metric}_sd"] = None if math.isnan(sd) else sd
    return json.dumps(summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..S−1)")
    parser.add_argument("--dataset", default="digits", help="dataset plugin: digits, idx, npz, ...")
    parser.add_argument("--data", default="", help="folder of IDX files or an .npz (file datasets)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key for both models"
    )
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=METHODS, help="the methods to run (default: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    methods = [method for method in METHODS if method in args.methods]
    data = {"dataset": args.dataset, "data": args.data}

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    results: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    labels: dict[str, str] = {}
    for seed in range(args.seeds):
        for block in ("hierarchical", "full"):
            if block not in methods:
                continue
            config = run_config(block, seed, data, args.set)
            log(
                f"seed {seed}: {block} ({config.train.n_steps} steps, n_latent {config.model.n_latent}, "
                f"K {config.model.n_clusters})"
            )
            results[block].append(harmonium_scores(config, log))
            labels[block] = f"harmonium {block} ({config.train.n_steps} steps)"
            log(f"  NMI {results[block][-1]['nmi']:.3f} in {results[block][-1]['seconds']:.1f} s")
        baseline = run_config("full", seed, data, args.set)  # the baselines' split and K: the full run's
        for method in ("kmeans", "gmm"):
            if method in methods:
                results[method].append(baseline_scores(baseline, method))
        n_clusters = baseline.model.n_clusters
        labels["kmeans"] = f"KMeans (K = {n_clusters}, n_init 10)"
        labels["gmm"] = f"GaussianMixture (K = {n_clusters}, diagonal)"
    print(f"{args.dataset}{' ' + args.data if args.data else ''}: {args.seeds} seeds, mean ± sd over seeds")
    print(table(results, labels))
    print(json_line(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
