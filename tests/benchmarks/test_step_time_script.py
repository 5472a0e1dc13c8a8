"""The step-time benchmark still runs against the library (a smoke run at tiny shapes).

Benchmarks build training states and chunks through the public training API; a change
there that a benchmark was not updated for should fail here, not in a user's hands.
The figures themselves are not asserted (speed is never asserted in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_time.py"


@pytest.mark.slow
def test_step_time_runs_at_tiny_shapes_and_ends_with_its_json_line() -> None:
    shapes = ["--batch-size", "8", "--n-latent", "4", "--n-clusters", "3", "--data-dim", "16"]
    command = [sys.executable, str(SCRIPT), "--chunk", "2", "--repeats", "1", *shapes]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["batch_size"] == 8 and summary["n_latent"] == 4 and summary["n_clusters"] == 3
    assert summary["hierarchical_s"] > 0 and summary["full_s"] > 0
