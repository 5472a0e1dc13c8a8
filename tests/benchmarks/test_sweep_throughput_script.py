"""The stacked-trials benchmark still runs against the library (a smoke run at tiny settings).

The figures are not asserted (speed is never asserted in tests); the run checks that both
parts execute and that the closing JSON line carries the keys the issue asks for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sweep_throughput.py"


@pytest.mark.slow
def test_sweep_throughput_runs_both_parts_and_ends_with_its_json_line() -> None:
    options = ["--sizes", "2", "--chunk", "2", "--repeats", "1", "--skip-seed", "--sweep-steps", "4"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 2 | map |" in result.stdout and "| 2 | vmap |" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["digits_speedup_8"] is None  # size 8 was not timed in this smoke run
    assert summary["digits_sweep_wall_ratio"] > 0
