"""The quality benchmark still runs against the library (a smoke run: one step, one seed, the smallest sizes).

Clustering scores after one step mean nothing and are not asserted; the table's rows
and the JSON line's fields are, with each score in its range.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.mark.slow
def test_quality_runs_the_chosen_methods_and_ends_with_its_json_line() -> None:
    # the smallest run the flags allow: one step of one latent unit and two clusters, one sample of each kind
    tiny = ["n_steps=1", "log_every=1", "kl_warmup_steps=0", "n_latent=1", "n_clusters=2", "batch_size=1"]
    tiny += ["n_mc_samples=1", "n_conj_samples=1", "n_r2_samples=1", "n_elbo_samples=1", "n_iwae_samples=1"]
    command = [sys.executable, str(SCRIPT), "--seeds", "1", "--methods", "hierarchical", "kmeans", "--quiet"]
    command += [f"--set={item}" for item in tiny]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| harmonium hierarchical (1 steps) |" in result.stdout and "| KMeans (K = 2, " in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"hierarchical", "kmeans"}
    for row in summary.values():
        assert 0 <= row["nmi_mean"] <= 1 and 0 <= row["purity_mean"] <= 1 and row["nmi_sd"] == 0.0
        assert row["active_clusters_mean"] >= 1 and row["seconds_mean"] > 0
