"""The full-model floor benchmark still runs against the library (a smoke run at tiny shapes).

The figures are not asserted (speed is never asserted in tests); the JSON line's fields and
their arithmetic are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "full_floor.py"


@pytest.mark.slow
def test_full_floor_runs_at_tiny_shapes_and_ends_with_its_json_line() -> None:
    shapes = ["--batch-size", "8", "--n-latent", "4", "--n-clusters", "3", "--data-dim", "16"]
    command = [sys.executable, str(SCRIPT), "--rounds", "1", "--chunk", "2", *shapes]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=SCRIPT.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = (summary["hierarchical_s"] + summary["products_s"]) / summary["hierarchical_s"]
    assert summary["floor_ratio"] == pytest.approx(ratio)
    # 2 products of B·D·n(K−1) multiply-adds, 2 FLOPs each
    assert summary["products_gflop"] == pytest.approx(2 * (2 * 8 * 16 * 4 * 2) / 1e9)
