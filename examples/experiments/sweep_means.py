"""Per-phase mean ± sd over a sweep's seeds, and NMI against steps from the runs' histories.

For a sweep whose phases are candidates and whose runs within a phase differ only
by seed (e.g. ``examples/sweeps/digits_defaults.toml``): prints one Markdown row per
phase with the mean ± sd of NMI, active clusters, purity and R², and the mean NMI
after every logged chunk (``history.csv``).

Run: ``python examples/experiments/sweep_means.py SWEEP_OUT_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def _mean_sd(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    sd = array.std(ddof=1) if array.size > 1 else 0.0
    return f"{array.mean():.3f} ± {sd:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the sweep's --out directory (holds results.csv)")
    args = parser.parse_args(argv)
    with (args.sweep / "results.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["status"] == "finished"]
    phases: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        phases[row["Phase"]].append(row)
    print("| phase | runs | NMI | active clusters | purity | R² |")
    print("|---|---|---|---|---|---|")
    for phase, runs in phases.items():
        cells = [_mean_sd([float(run[column]) for run in runs]) for column in ("NMI", "Active", "Purity", "R²")]
        print(f"| {phase} | {', '.join(run['Run'] for run in runs)} | {' | '.join(cells)} |")
    print()
    curves: dict[str, dict[int, list[float]]] = {}
    for phase, runs in phases.items():
        by_step: dict[int, list[float]] = defaultdict(list)
        for run in runs:
            with (args.sweep / run["Run"] / "history.csv").open() as handle:
                for entry in csv.DictReader(handle):
                    by_step[int(float(entry["step"]))].append(float(entry["nmi"]))
        curves[phase] = {step: values for step, values in sorted(by_step.items())}
    steps = sorted({step for curve in curves.values() for step in curve})
    print("| phase | " + " | ".join(str(step) for step in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for phase, curve in curves.items():
        cells = [f"{np.mean(curve[step]):.3f}" if step in curve else "" for step in steps]
        print(f"| {phase} | " + " | ".join(cells) + " |")
    summary = {phase: {str(step): float(np.mean(v)) for step, v in curve.items()} for phase, curve in curves.items()}
    print(json.dumps({"nmi_by_step": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
