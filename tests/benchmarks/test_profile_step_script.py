"""The profiler still runs against the library (a smoke run at tiny shapes).

Its figures are not asserted (speed is never asserted in tests); its JSON line's fields are:
the pieces it found in the trace, their sum, the step time and XLA's cost counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "profile_step.py"


@pytest.mark.slow
def test_profile_step_traces_the_tiny_step_and_ends_with_its_json_line() -> None:
    shapes = ["--batch-size", "1", "--n-latent", "1", "--n-clusters", "2", "--data-dim", "1"]  # the smallest allowed
    command = [sys.executable, str(SCRIPT), "--block", "hierarchical", "--chunk", "1", "--top", "3", *shapes]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["block"] == "hierarchical" and (summary["batch_size"], summary["n_latent"]) == (1, 1)
    pieces = summary["pieces_ms"]
    assert pieces and all(ms >= 0 for ms in pieces.values())
    assert summary["operations_ms"] == pytest.approx(sum(pieces.values()))
    assert summary["operations_ms"] > 0 and summary["step_s"] > 0
    assert summary["gflop"] > 0 and summary["mb_accessed"] > 0
