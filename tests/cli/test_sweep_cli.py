"""``expfam sweep`` and ``expfam compare``: exit codes, output, files, and one real tiny sweep (slow)."""

from __future__ import annotations

import csv
import json

import pytest

import expfam.experiment.sweeps.run
from expfam.experiment.config import config_from_mapping
from expfam.experiment.runs.files import write_config, write_metrics
from expfam.experiment.runs.layout import write_info

TINY_SWEEP = """\
title = "Tiny sweep"
prefix = "H"

[base.model]
n_latent = 4
n_clusters = 3

[base.train]
n_steps = 20
log_every = 10
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64

[base.evaluate]
n_r2_samples = 500
n_iwae_samples = 5
batch_size = 400

[[phases]]
name = "Phase 1: Learning rate"
grid = {lr = [3e-3, 1e-2]}
"""


def _fake_trial(config, run_dir):
    return {"nmi": 0.5 + config.train.learning_rate, "r2": 0.99, "purity": 0.6, "recon": 4.0}


@pytest.fixture()
def sweep_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SWEEP)
    return path


def test_bad_sweep_file_is_a_user_error(runner, app, tmp_path, assert_user_error):
    path = tmp_path / "bad.toml"
    path.write_text('[[phases]]\nname = "P"\ngrid = {n_latnet = [4]}\n')
    assert_user_error(runner.invoke(app, ["sweep", str(path)]), "bad.toml", "unknown key 'n_latnet'")
    path.write_text('[[phases]]\nname = "P"\nruns = [{learning_rate = "fast"}]\n')
    assert_user_error(runner.invoke(app, ["sweep", str(path)]), "learning_rate must be float", "'fast'")


def test_sweep_runs_then_resumes(runner, app, tmp_path, sweep_file, monkeypatch):
    monkeypatch.setattr(expfam.experiment.sweeps.run, "train_trial", _fake_trial)
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--no-stack"])
    assert result.exit_code == 0, result.output
    assert "2 trials in 1 phases" in result.output and "H2 finished in" in result.output
    report = (out / "report.md").read_text()
    assert report.startswith("# Tiny sweep") and "## Phase 1: Learning rate" in report
    assert f"expfam sweep {sweep_file} --out {out} --no-stack" in report
    assert [row["Run"] for row in csv.DictReader((out / "results.csv").open())] == ["H1", "H2"]

    again = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out)])
    assert again.exit_code == 0 and "H1 already finished" in again.output and "training" not in again.output


def test_failed_trial_exit_code_1(runner, app, tmp_path, sweep_file, monkeypatch):
    def fail_second(config, run_dir):
        if run_dir.name == "H2":
            raise RuntimeError("out of memory")
        return _fake_trial(config, run_dir)

    monkeypatch.setattr(expfam.experiment.sweeps.run, "train_trial", fail_second)
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(tmp_path / "out"), "--no-stack"])
    assert result.exit_code == 1, result.output
    assert "1 of 2 trials failed: H2" in result.stderr
    assert "failed: RuntimeError: out of memory" in (tmp_path / "out" / "report.md").read_text()


def test_interrupted_sweep_exit_code_130(runner, app, tmp_path, sweep_file, monkeypatch):
    def interrupt(config, run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(expfam.experiment.sweeps.run, "train_trial", interrupt)
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(tmp_path / "out"), "--no-stack"])
    assert result.exit_code == 130 and "rerun the same command to resume" in result.stderr


def test_compare(runner, app, tmp_path, assert_user_error):
    for name, block, nmi in (("full", "full", 0.71), ("H1", "hierarchical", 0.57)):
        (tmp_path / name).mkdir()
        write_config(tmp_path / name, config_from_mapping({"model": {"block": block}}))
        write_metrics(tmp_path / name, {"nmi": nmi, "r2": 0.99, "purity": 0.8, "recon": 3.3})
        write_info(tmp_path / name, {"status": "completed"})  # finished: run.json is written last
    result = runner.invoke(app, ["compare", str(tmp_path / "full"), str(tmp_path / "H1")])
    assert result.exit_code == 0, result.output
    assert "| Metric | full (full) | H1 (hierarchical) |" in result.output
    assert "H1 (hierarchical) achieves 80% of full (full)'s NMI." in result.output
    assert_user_error(runner.invoke(app, ["compare", str(tmp_path / "nowhere")]), "nowhere", "does not exist")


@pytest.mark.slow
def test_tiny_sweep_end_to_end(runner, app, tmp_path, sweep_file):
    """Two real runs of the same shapes (the second reuses the first's compiled functions)."""
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--no-run-plots"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert not (out / "H1" / "samples.png").exists()
    for name in ("H1", "H2"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert 0.0 <= metrics["nmi"] <= 1.0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(row["Run"], row["lr"], row["status"]) for row in rows] == [
        ("H1", "0.003", "finished"),
        ("H2", "0.01", "finished"),
    ]
    report = (out / "report.md").read_text()
    assert "**H" in report and "expfam train --block hierarchical --n-latent 4" in report
    assert f"expfam sweep {sweep_file} --out {out} --no-run-plots" in report
    assert (out / "plots" / "learning_rate.png").is_file()

    again = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out)])
    assert again.exit_code == 0 and again.output.count("already finished") == 2

    compared = runner.invoke(app, ["compare", str(out / "H1"), str(out / "H2")])
    assert compared.exit_code == 0 and "| Metric | H1 (hierarchical) | H2 (hierarchical) |" in compared.output
