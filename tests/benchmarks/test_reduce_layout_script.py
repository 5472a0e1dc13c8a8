"""The reduction-layout benchmark still runs (a smoke run at tiny shapes).

Its figures are not asserted (speed is never asserted in tests); its JSON line's fields are:
every layout it names, both reductions, and the shapes it was asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reduce_layout.py"


@pytest.mark.slow
def test_reduce_layout_runs_at_tiny_shapes_and_ends_with_its_json_line() -> None:
    shapes = ["--batch-size", "4", "--n-latent", "3", "--n-clusters", "3"]
    command = [sys.executable, str(SCRIPT), *shapes, "--repeats", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["batch_size"], summary["n_latent"], summary["n_clusters"]) == (4, 3, 3)
    assert set(summary["layouts"]) == {"(J, B, n)", "(B, J, n)", "(B, n, J)"}
    for figures in summary["layouts"].values():
        assert set(figures) == {"cluster_sum_ms", "latent_sum_ms"}
        assert all(value > 0 for value in figures.values())


def test_reduce_layout_refuses_a_single_cluster() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--n-clusters", "1"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 2
    assert "--n-clusters" in result.stderr
