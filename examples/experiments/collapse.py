"""Experiment: cluster collapse of the full model on a 784-pixel dev set, and its remedy (docs/collapse.md).

For each seed, trains at the issue-13 protocol (:data:`PROTOCOL`: n_latent 128, K 30,
lr 1.5e-3, warmups 500 / 1200 / 2000, conj 0.1, entropy weights 5 and 10, batch 512,
10 samples, 3000 steps)

* ``hierarchical`` — the ``hierarchical`` block set;
* ``full`` — the ``full`` block set as the seed's runs started it: random cluster
  parameters (``cluster_init = "random"``, docs/model.md's initialisation) and every block
  from step 0 (``block_schedule = ""``);
* ``remedy`` — the ``full`` block set with the remedy's overrides (``--remedy KEY=VALUE``,
  default ``cluster_init=kmeans``: every cluster starts as the observable fitted to its
  KMeans points, the ``full`` block set's default since it kept every cluster here);
* ``kmeans`` — scikit-learn's ``KMeans(K, n_init=10)`` on the same training split;

all scored on the same test split. Prints a table of NMI (mean ± sd), active clusters
(mean, min and max over seeds), ‖ρ̃‖ and seconds, then one JSON line
``{"hierarchical": {"nmi_mean", "nmi_sd", "active_mean", "active_min", ...}, ...}``.

With ``--out DIR`` every run keeps its run directory ``DIR/<method>-s<seed>`` (history
with the cluster-usage columns, ``cluster_usage.png``); a completed run found there is
read back instead of retrained, so an interrupted benchmark continues where it stopped.

Run (make the dev set first, see examples/experiments/make_mnist_dev.py)::

    python examples/experiments/collapse.py --data mnist_dev.npz --seeds 3 --out runs/collapse
    python examples/experiments/collapse.py --data mnist_dev.npz --methods remedy \
        --remedy cluster_init=random --remedy block_schedule=xyk:1000,xk:1000
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from expfam.experiment.config import RunConfig, config_from_mapping, config_to_mapping, default_config
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.layout import read_info
from expfam.experiment.runs.solo import train_run
from expfam.metrics import clustering_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
parse_value = importlib.import_module("quality").parse_value  # benchmarks/quality.py: "3" → 3, "1e-3" → 0.001

#: The issue-13 protocol, applied over each block set's defaults.
PROTOCOL: dict[str, dict[str, Any]] = {
    "model": {"n_latent": 128, "n_clusters": 30},
    "train": {
        "learning_rate": 1.5e-3,
        "lr_warmup_steps": 500,
        "kl_warmup_steps": 1200,
        "conj_warmup_steps": 2000,
        "conj_weight": 0.1,
        "entropy_weight": 5.0,
        "posterior_entropy_weight": 10.0,
        "batch_size": 512,
        "n_mc_samples": 10,
        "n_conj_samples": 1024,
        "n_steps": 3000,
        "log_every": 250,
        "checkpoint_every": 0,
    },
}
METHODS: tuple[str, ...] = ("hierarchical", "full", "remedy", "kmeans")
DEFAULT_REMEDY: tuple[str, ...] = ("cluster_init=kmeans",)


def overrides_mapping(items: Sequence[str], sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``["n_steps=500", ...]`` as ``{"train": {"n_steps": 500}}`` (each key found in its section)."""
    mapping: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section = next((name for name, keys in sections.items() if key in keys), None)
        if not sep or section is None:
            raise SystemExit(f"{item!r}: expected KEY=VALUE with a config key, e.g. n_steps=500")
        mapping.setdefault(section, {})[key] = parse_value(value)
    return mapping


def method_config(method: str, seed: int, data: str, overrides: Sequence[str], remedy: Sequence[str]) -> RunConfig:
    """The protocol's configuration of one harmonium method and seed on the ``npz`` file ``data``."""
    block = "hierarchical" if method == "hierarchical" else "full"
    base = default_config(block)
    sections = config_to_mapping(base)
    config = config_from_mapping(PROTOCOL, base)
    items = [f"seed={seed}", *overrides]
    if method == "full":
        items.extend(["cluster_init=random", "block_schedule="])
    elif method == "remedy":
        items.extend(remedy)
    mapping = overrides_mapping(items, sections)
    mapping.setdefault("data", {}).update({"dataset": "npz", "data": data})
    return config_from_mapping(mapping, config)


def harmonium_scores(config: RunConfig, out: Path | None, log: Callable[[str], None]) -> dict[str, float]:
    """Train one run into ``out`` (or read it back when it completed there) and return its test metrics."""
    if out is not None and (out / "metrics.json").is_file() and read_info(out).get("status") == "completed":
        log(f"  reusing {out}")
        metrics: dict[str, float] = json.loads((out / "metrics.json").read_text())
        metrics.setdefault("seconds", float(read_info(out).get("total_seconds", float("nan"))))
        return metrics
    started = time.perf_counter()
    metrics = dict(train_run(config, out, overwrite=True, log=log))
    metrics["seconds"] = time.perf_counter() - started
    return metrics


def kmeans_scores(config: RunConfig) -> dict[str, float]:
    """``KMeans(K, n_init=10)`` on the training split, scored on the test split."""
    from sklearn.cluster import KMeans

    split = prepare_run(config).split
    if split.y_test is None:
        raise SystemExit("the dev set has no labels; NMI needs y_train and y_test in the .npz")
    started = time.perf_counter()
    fitted = KMeans(n_clusters=config.model.n_clusters, n_init=10, random_state=config.train.seed).fit(split.x_train)
    scores: dict[str, float] = dict(
        clustering_metrics(split.y_test, fitted.predict(split.x_test), config.model.n_clusters)
    )
    scores["rho_norm"] = float("nan")
    scores["seconds"] = time.perf_counter() - started
    return scores


def summary(runs: Sequence[dict[str, float]]) -> dict[str, float | None]:
    """NMI mean and sd (sample), active clusters mean, min and max, mean ‖ρ̃‖ and seconds."""
    nmi = np.array([run["nmi"] for run in runs], dtype=float)
    active = np.array([run["active_clusters"] for run in runs], dtype=float)
    rho = np.array([run.get("rho_norm", np.nan) for run in runs], dtype=float)
    seconds = np.array([run.get("seconds", np.nan) for run in runs], dtype=float)

    def number(value: float) -> float | None:
        return None if not np.isfinite(value) else float(value)

    return {
        "nmi_mean": number(nmi.mean()),
        "nmi_sd": number(nmi.std(ddof=1)) if nmi.size > 1 else 0.0,
        "active_mean": number(active.mean()),
        "active_min": number(active.min()),
        "active_max": number(active.max()),
        "rho_norm_mean": number(np.nanmean(rho)) if np.any(np.isfinite(rho)) else None,
        "seconds_mean": number(np.nanmean(seconds)) if np.any(np.isfinite(seconds)) else None,
        "nmi": [float(v) for v in nmi],  # type: ignore[dict-item]
        "active": [float(v) for v in active],  # type: ignore[dict-item]
    }


def table(summaries: dict[str, dict[str, float | None]], labels: dict[str, str]) -> str:
    """Markdown table, one row per method."""

    def cell(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        "| method | NMI (mean ± sd) | active clusters (mean, min–max) | ‖ρ̃‖ (mean) | seconds (mean) |",
        "|---|---|---|---|---|",
    ]
    for method, row in summaries.items():
        lines.append(
            f"| {labels[method]} | {cell(row['nmi_mean'], 3)} ± {cell(row['nmi_sd'], 3)} | "
            f"{cell(row['active_mean'], 1)} ({cell(row['active_min'], 0)}–{cell(row['active_max'], 0)}) | "
            f"{cell(row['rho_norm_mean'], 1)} | {cell(row['seconds_mean'], 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the dev set .npz (examples/experiments/make_mnist_dev.py)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..S−1)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the protocol's 3000)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument(
        "--remedy", action="append", default=None, metavar="KEY=VALUE", help="the remedy's overrides (repeatable)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    parser.add_argument("--out", type=Path, default=None, help="keep run directories here (and reuse completed ones)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        raise SystemExit(f"--data {args.data}: no such file; make it with examples/experiments/make_mnist_dev.py")
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    remedy = args.remedy if args.remedy is not None else list(DEFAULT_REMEDY)
    overrides = [*args.set, *([f"n_steps={args.steps}"] if args.steps is not None else [])]

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    configs = {method: method_config(method, seeds[0], args.data, overrides, remedy) for method in methods}
    steps = next(iter(configs.values())).train.n_steps
    labels = {
        "hierarchical": f"hierarchical ({steps} steps)",
        "full": f"full, random start, all blocks from step 0 ({steps} steps)",
        "remedy": f"full + remedy {' '.join(remedy)} ({steps} steps)",
        "kmeans": "KMeans (same K, n_init 10)",
    }
    for seed in seeds:
        for method in methods:
            config = method_config(method, seed, args.data, overrides, remedy)
            log(f"seed {seed}: {labels[method]}")
            if method == "kmeans":
                scores = kmeans_scores(config)
            else:
                out = args.out / f"{method}-s{seed}" if args.out is not None else None
                scores = harmonium_scores(config, out, log)
            results[method].append(scores)
            log(f"  NMI {scores['nmi']:.3f}, {scores['active_clusters']:.0f} active, {scores['seconds']:.0f} s")
    summaries = {method: summary(runs) for method, runs in results.items()}
    print(f"{args.data}: seeds {seeds.start}..{seeds.stop - 1}, K {configs[methods[0]].model.n_clusters}")
    print(table(summaries, labels))
    print(json.dumps(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
