"""The collapse benchmark still runs against the library (a smoke run at tiny shapes on a tiny npz).

The figures are not asserted (the benchmark measures; tests never assert its results); the
table's rows and the final JSON line's fields are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "collapse.py"


@pytest.mark.slow
def test_collapse_runs_every_method_at_tiny_shapes_and_ends_with_its_json_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 12)
    images = rng.integers(0, 256, (36, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x_train=images[:24], y_train=labels[:24], x_test=images[24:], y_test=labels[24:])
    tiny = ["n_latent=2", "n_clusters=3", "batch_size=8", "n_mc_samples=2", "n_conj_samples=8", "log_every=2"]
    command = [sys.executable, str(SCRIPT), "--data", str(tmp_path / "tiny.npz"), "--seeds", "1", "--steps", "4"]
    command += [f"--set={item}" for item in tiny] + [
        "--remedy=cluster_init=kmeans",
        "--out",
        str(tmp_path / "runs"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"hierarchical", "full", "remedy", "kmeans"}
    assert all(len(row["nmi"]) == 1 and 1 <= row["active_min"] <= 3 for row in summary.values())
    history = (tmp_path / "runs" / "remedy-s0" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,") and "norm_xk" in history[0] and len(history) == 3
    assert (tmp_path / "runs" / "full-s0" / "cluster_usage.png").is_file()
