"""The stacked-trials benchmark still runs against the library (a smoke run at tiny settings).

The figures are not asserted (speed is never asserted in tests); the run checks that both
parts execute and that the closing JSON line carries the keys the issue asks for, with
positive times and finite speedups.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sweep_throughput.py"


@pytest.mark.slow
def test_sweep_throughput_runs_both_parts_and_ends_with_its_json_line() -> None:
    options = ["--sizes", "2", "--modes", "map", "--chunk", "1", "--repeats", "1", "--skip-seed"]
    options += ["--sweep-steps", "2", "--sweep-trials", "2", "--sweeps", "stacked"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 2 | map |" in result.stdout and "(b) 2-trial digits sweep" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["digits_speedup_8"] is None  # size 8 was not timed in this smoke run
    speedup = summary["digits_speedups"]["map"]["2"]
    assert math.isfinite(speedup) and speedup > 0
    assert list(summary["digits_sweep_walls_s"]) == ["stacked"] and summary["digits_sweep_walls_s"]["stacked"] > 0
    assert summary["digits_sweep_wall_ratio"] is None  # needs the one-at-a-time sweep too
    assert summary["vectorize"] == "map" and "seed_speedup_8" not in summary
