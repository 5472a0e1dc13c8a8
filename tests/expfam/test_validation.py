"""Model selection without peeking: a stratified validation split for selection, the test split scored once."""

from __future__ import annotations

import numpy as np
import pytest

from expfam.experiment.config import config_from_mapping
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.solo import evaluate_run, train_run
from expfam.experiment.sweeps.report import best_section, format_table
from expfam.experiment.sweeps.results import FINISHED, TrialResult
from expfam.experiment.sweeps.spec import parse_sweep


def test_validation_split_is_stratified_and_disjoint_from_the_test_split():
    prepared = prepare_run(config_from_mapping({"data": {"validation_fraction": 0.25}, "train": {"seed": 4}}))
    train, validation, test = prepared.split.y_train, prepared.split.y_test, prepared.held_out.y_test
    whole = prepared.held_out.y_train
    assert len(validation) == round(0.25 * len(whole)) and len(train) + len(validation) == len(whole)
    # every class keeps its share of the training rows (within one row, from rounding)
    for label in np.unique(whole):
        assert abs(np.sum(validation == label) - 0.25 * np.sum(whole == label)) < 1
    # the held-out test split is the plain run's test split, untouched
    plain = prepare_run(config_from_mapping({"train": {"seed": 4}})).split
    np.testing.assert_array_equal(prepared.held_out.x_test, plain.x_test)
    np.testing.assert_array_equal(test, plain.y_test)
    assert prepare_run(config_from_mapping({"train": {"seed": 4}})).held_out is None


@pytest.mark.slow
def test_a_run_reports_validation_metrics_and_the_test_split_beside_them(tmp_path):
    config = config_from_mapping(
        {
            "model": {"n_latent": 4, "n_clusters": 5},
            "data": {"validation_fraction": 0.2},
            "train": {"n_steps": 20, "log_every": 10, "batch_size": 32, "n_mc_samples": 2, "n_conj_samples": 32},
            "evaluate": {"n_r2_samples": 200, "n_iwae_samples": 2, "batch_size": 400},
        }
    )
    metrics = train_run(config, tmp_path / "run", plots=False)
    names = ("nmi", "r2", "purity", "recon")
    assert all(f"test_{name}" in metrics for name in names)
    assert metrics["recon"] != metrics["test_recon"]  # two different sets of rows
    again = evaluate_run(tmp_path / "run")
    assert again.keys() == metrics.keys()
    np.testing.assert_allclose([again[k] for k in metrics], [metrics[k] for k in metrics], rtol=1e-6)


def test_report_shows_test_columns_beside_and_selects_on_validation():
    spec = parse_sweep({"prefix": "H", "phases": [{"name": "P", "grid": {"n_latent": [4, 8]}}]})
    scores = [
        {
            "nmi": 0.7,
            "r2": 0.99,
            "purity": 0.5,
            "recon": 3.0,
            "test_nmi": 0.5,
            "test_r2": 0.99,
            "test_purity": 0.4,
            "test_recon": 3.1,
        },
        {
            "nmi": 0.6,
            "r2": 0.99,
            "purity": 0.5,
            "recon": 3.0,
            "test_nmi": 0.8,
            "test_r2": 0.99,
            "test_purity": 0.6,
            "test_recon": 2.9,
        },
    ]
    results = [TrialResult(t, FINISHED, m) for t, m in zip(spec.trials, scores, strict=True)]
    header = format_table(results).splitlines()[0]
    assert "| NMI |" in header and "| Test NMI | Test R² | Test Purity | Test Recon | Notes |" in header
    best = "\n".join(best_section(spec, results))
    # H1 has the better validation NMI; H2's better test NMI must not choose it
    assert "**H1**" in best and "validation" in best and "test split NMI 0.50" in best
