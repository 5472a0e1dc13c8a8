"""The coupling study's sweep file pins each block set's defaults; its curve script reads the runs it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from expfam.experiment.config import config_to_mapping, default_config
from expfam.experiment.sweeps.spec import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "examples" / "sweeps" / "coupling_curves.toml"
SCRIPT = ROOT / "examples" / "experiments" / "coupling_curves.py"
#: What the study sets on purpose: the data, the horizon and how often it logs and checkpoints.
STUDY_KEYS = {"dataset", "data", "n_steps", "log_every", "checkpoint_every", "seed"}


#: Each phase's name prefix, its block set, and the keys where it departs from that block set's defaults on purpose.
PHASES = {
    "Phase 1": ("hierarchical", set()),
    "Phase 2": ("full", {"cluster_init", "block_learning_rates"}),  # the full defaults before issue 30
    "Phase 3": ("full", set()),
}


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_each_phase_trains_its_block_sets_defaults(phase: str) -> None:
    """Apart from the data, the horizon and the seed, phases 1 and 3 are `expfam train --block B`'s runs."""
    block, before = PHASES[phase]
    (found,) = [p for p in load_sweep(SWEEP).phases if p.name.startswith(phase)]
    trials = found.trials
    assert len(trials) == 3 and {trial.config.train.seed for trial in trials} == {0, 1, 2}
    defaults = config_to_mapping(default_config(block))
    for trial in trials:
        assert trial.config.model.block == block
        mapping = config_to_mapping(trial.config)
        differing = {
            key
            for section, values in mapping.items()
            for key, value in values.items()
            if defaults[section][key] != value
        }
        assert differing - STUDY_KEYS == before, (
            f"{trial.name}: {sorted(differing - STUDY_KEYS)} differ from the defaults"
        )
        assert trial.config.train.n_steps == 30000 and trial.config.train.checkpoint_every > 0


def _run(root: Path, name: str, nmi: list[float]) -> None:
    run = root / name
    run.mkdir(parents=True)
    lines = ["step,nmi,active,elbo,r2"] + [
        f"{500 * (i + 1)},{value},{20 - i},{-1000 + i},{0.1 * i}" for i, value in enumerate(nmi)
    ]
    (run / "history.csv").write_text("\n".join(lines) + "\n")


def test_curve_script_tables_nmi_per_seed_at_the_steps_and_draws_the_figure(tmp_path: Path) -> None:
    _run(tmp_path, "C1-s0", [0.3, 0.5, 0.55])
    _run(tmp_path, "C1-s1", [0.2, 0.4, 0.45])
    _run(tmp_path, "C2-s0", [0.6, 0.61])  # still running: no row at step 1500
    figure = str(tmp_path / "figure")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--steps", "1000", "1500", "--kmeans-seeds", "0", "--out", figure],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| hierarchical | C1-s0 | 0.500 | 0.550 | 18 |" in result.stdout
    assert "| full | C2-s0 | 0.610 | nan | 19 |" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["nmi"]["hierarchical"]["1000"] == pytest.approx([0.5, 0.4])
    assert summary["kmeans_nmi"] is None
    assert (tmp_path / "figure" / "coupling_curves.png").stat().st_size > 10_000


def test_curve_script_names_a_pattern_that_matches_no_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--runs", "full=C9-s*", "--kmeans-seeds", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "full=C9-s*" in result.stderr and "no run directory" in result.stderr
