"""The cluster benchmark still runs (a smoke run at tiny settings; its figures are not asserted).

It starts its own scheduler and worker and stops them by their ids; the run checks that both sweeps
finished and that the closing JSON line carries the keys the issue asks for, with positive times.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the benchmark runs a Dask cluster: pip install 'expfam[dask]'")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sweep_cluster.py"


@pytest.mark.slow
def test_sweep_cluster_times_both_executors_and_ends_with_its_json_line() -> None:
    options = ["--trials", "2", "--steps", "10", "--workers", "1"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *options], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "local, --jobs 1:" in result.stdout and "dask, 1 workers on tcp://127.0.0.1:" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["local_s"] > 0 and summary["dask_s"] > 0 and math.isfinite(summary["dask_over_local"])
    assert (summary["trials"], summary["workers"], summary["steps"]) == (2, 1, 10)
