"""The sweep summary reads a sweep's results and histories and averages over each phase's seeds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "experiments" / "sweep_means.py"


def _sweep(root: Path) -> None:
    """Two phases of two finished runs each, and one failed run that must be left out."""
    rows = [
        ("P1", "H1", "finished", 0.5, 10, 0.6, 0.1, [0.2, 0.4]),
        ("P1", "H2", "finished", 0.7, 12, 0.8, 0.3, [0.4, 0.6]),
        ("P2", "H3", "finished", 0.9, 20, 0.9, 0.5, [0.8, 0.9]),
        ("P2", "H4", "failed", 0.0, 0, 0.0, 0.0, []),
    ]
    with (root / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Phase", "Run", "status", "NMI", "Active", "Purity", "R²"])
        for phase, run, status, nmi, active, purity, r2, curve in rows:
            writer.writerow([phase, run, status, nmi, active, purity, r2])
            if curve:
                (root / run).mkdir()
                lines = ["step,nmi"] + [f"{100 * (i + 1)},{value}" for i, value in enumerate(curve)]
                (root / run / "history.csv").write_text("\n".join(lines) + "\n")


def test_sweep_means_averages_each_phase_over_its_finished_runs(tmp_path: Path) -> None:
    _sweep(tmp_path)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| P1 | H1, H2 | 0.600 ± 0.141 | 11.000 ± 1.414 |" in result.stdout
    assert "| P2 | H3 | 0.900 ± 0.000 |" in result.stdout and "H4" not in result.stdout
    curves = json.loads(result.stdout.strip().splitlines()[-1])["nmi_by_step"]
    assert curves["P1"] == {"100": pytest.approx(0.3), "200": pytest.approx(0.5)}
    assert curves["P2"] == {"100": pytest.approx(0.8), "200": pytest.approx(0.9)}
