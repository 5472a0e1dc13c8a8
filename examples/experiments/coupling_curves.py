"""Experiment: learning curves of the coupling study (docs/coupling.md) from its sweep's run directories.

Reads ``history.csv`` of every run named by ``--runs LABEL=GLOB`` (default: the hierarchical and
full phases of ``examples/sweeps/coupling_curves.toml``, runs ``C1-s*`` and ``C2-s*`` of the sweep
folder), and draws NMI, active clusters, the ELBO and R² against the step, one line per seed and
the mean over seeds in bold, with horizontal lines for KMeans (``KMeans(K, n_init=10)`` on the same
training split, scored on the same test split, seeds 0..S−1: the mean) and for the reference
table's anchors (NMI 0.71 full, 0.57 hierarchical H1, both at 300 000 steps on all of MNIST with
K = 30). Prints a Markdown table of the test NMI per seed at the chosen steps, then one JSON line.

Run (after the sweep)::

    python examples/experiments/coupling_curves.py sweeps/coupling_curves --out docs/results/coupling
    python examples/experiments/coupling_curves.py sweeps/coupling_curves \
        --runs hierarchical='C1-s*' --runs full='C2-s*' --runs remedy='sweeps/coupling_remedy/R1-s*'
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The reference table's NMI (all of MNIST, K = 30, 300 000 steps): the full model and the best
#: hierarchical row H1 (``../shared/seeds``).
ANCHORS: dict[str, float] = {"reference full (0.71)": 0.71, "reference hierarchical H1 (0.57)": 0.57}
PANELS: tuple[tuple[str, str], ...] = (
    ("nmi", "test NMI"),
    ("active", "active clusters"),
    ("elbo", "ELBO (chunk mean)"),
    ("r2", "R²"),
)
DEFAULT_RUNS: tuple[str, ...] = ("hierarchical=C1-s*", "full=C2-s*")


def read_history(run_dir: Path) -> dict[str, np.ndarray]:
    """The columns of ``run_dir/history.csv`` as float arrays."""
    with (run_dir / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{run_dir}/history.csv has no rows yet")
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


def groups(sweep: Path, specs: Sequence[str]) -> dict[str, list[Path]]:
    """``{label: [run directories]}`` from ``LABEL=GLOB`` items (a relative glob is under ``sweep``)."""
    found: dict[str, list[Path]] = {}
    for spec in specs:
        label, sep, pattern = spec.partition("=")
        if not sep:
            raise SystemExit(f"--runs {spec!r}: expected LABEL=GLOB, e.g. full='C2-s*'")
        base = Path(pattern)
        matches = sorted(base.parent.glob(base.name)) if base.is_absolute() or base.parent != Path(".") else []
        matches = matches or sorted(sweep.glob(pattern))
        runs = [path for path in matches if (path / "history.csv").is_file()]
        if not runs:
            raise SystemExit(f"--runs {spec!r}: no run directory with a history.csv matches")
        found[label] = runs
    return found


def kmeans_nmi(run_dir: Path, seeds: int) -> float:
    """Mean test NMI of ``KMeans(K, n_init=10)`` over seeds on the run's data (its config.toml)."""
    from sklearn.cluster import KMeans

    from expfam.experiment.config import load_config
    from expfam.experiment.prepare import prepare_run
    from expfam.metrics import normalized_mutual_information

    config = load_config(run_dir / "config.toml")
    split = prepare_run(config).split
    values = []
    for seed in range(seeds):
        fitted = KMeans(n_clusters=config.model.n_clusters, n_init=10, random_state=seed).fit(split.x_train)
        values.append(normalized_mutual_information(split.y_test, fitted.predict(split.x_test)))
    return float(np.mean(values))


def at_step(history: dict[str, np.ndarray], step: int, column: str = "nmi") -> float:
    """The column's value at ``step`` (nan when the run has not reached it)."""
    hits = np.flatnonzero(history["step"] == step)
    return float(history[column][hits[0]]) if hits.size else float("nan")


def plot(curves: dict[str, list[dict[str, np.ndarray]]], kmeans: float | None, target: Path) -> None:
    """Four panels against the step: thin lines per seed, the seed mean in bold, KMeans and the anchors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    for (column, title), axis in zip(PANELS, axes.ravel(), strict=True):
        for index, (label, runs) in enumerate(curves.items()):
            colour = f"C{index}"
            for history in runs:
                axis.plot(history["step"], history[column], color=colour, alpha=0.35, linewidth=0.8)
            length = min(len(history["step"]) for history in runs)
            mean = np.mean([history[column][:length] for history in runs], axis=0)
            axis.plot(runs[0]["step"][:length], mean, color=colour, linewidth=2, label=f"{label} ({len(runs)} seeds)")
        if column == "nmi":
            if kmeans is not None:
                axis.axhline(kmeans, color="black", linestyle="--", linewidth=1, label=f"KMeans ({kmeans:.3f})")
            for (label, value), style in zip(ANCHORS.items(), (":", "-."), strict=True):
                axis.axhline(value, color="grey", linestyle=style, linewidth=1, label=label)
        if column == "active":
            axis.set_ylim(0, max(float(h["active"].max()) for runs in curves.values() for h in runs) + 1)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if column == "nmi":
            axis.legend(fontsize=8)
    figure.tight_layout()
    partial = target.with_name(f".{target.name}.partial.png")
    figure.savefig(partial, dpi=90)
    plt.close(figure)
    partial.replace(target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="the sweep folder of examples/sweeps/coupling_curves.toml")
    parser.add_argument("--runs", action="append", default=None, help="LABEL=GLOB (repeatable)")
    parser.add_argument("--steps", type=int, nargs="+", default=[3000, 10000, 20000, 30000])
    parser.add_argument("--kmeans-seeds", type=int, default=3, help="0: no KMeans line")
    parser.add_argument("--out", type=Path, default=None, help="folder for coupling_curves.png")
    args = parser.parse_args(argv)
    found = groups(args.sweep, args.runs or DEFAULT_RUNS)
    curves = {label: [read_history(run) for run in runs] for label, runs in found.items()}
    first = next(iter(found.values()))[0]
    kmeans = (
        kmeans_nmi(first, args.kmeans_seeds) if args.kmeans_seeds > 0 and (first / "config.toml").is_file() else None
    )
    print("| runs | seed | " + " | ".join(f"NMI at {step}" for step in args.steps) + " | active at end |")
    print("|---|---|" + "---|" * len(args.steps) + "---|")
    summary: dict[str, dict[str, list[float]]] = {}
    for label, runs in found.items():
        for run_dir, history in zip(runs, curves[label], strict=True):
            values = [at_step(history, step) for step in args.steps]
            for step, value in zip(args.steps, values, strict=True):
                summary.setdefault(label, {}).setdefault(str(step), []).append(value)
            cells = " | ".join(f"{value:.3f}" for value in values)
            print(f"| {label} | {run_dir.name} | {cells} | {history['active'][-1]:.0f} |")
    if kmeans is not None:
        print(f"KMeans (K from the runs, n_init 10, mean of {args.kmeans_seeds} seeds): NMI {kmeans:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot(curves, kmeans, args.out / "coupling_curves.png")
    print(json.dumps({"kmeans_nmi": kmeans, "nmi": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
