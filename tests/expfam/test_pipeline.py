"""expfam.experiment.runs.solo: train_run / evaluate_run / summaries on a small digits run.

One short run, trained once per test run (`small_run`, tests/conftest.py), is shared by the
tests marked slow; the same configuration trained by a real `expfam train` process
(`small_run_by_cli`, read by tests/cli/test_train.py) checks same-seed determinism across the
process boundary. The other tests never train (inputs are refused first, or ``train`` is replaced).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import expfam.experiment.runs.recorder as recorder
import expfam.experiment.runs.solo as solo
from expfam.errors import ConfigurationError, DataError, SupportError, TrainingDivergedError, UnknownNameError
from expfam.experiment.config import config_from_mapping, load_config
from expfam.experiment.evaluation import assignments
from expfam.experiment.prepare import parse_blocks, prepare_run
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.files import load_params, metrics_equal, read_history, read_metrics
from expfam.experiment.runs.health import collapse_warning
from expfam.experiment.runs.layout import PLOT_FILES, read_info
from expfam.experiment.runs.solo import evaluate_run, train_run
from expfam.experiment.runs.table import SUMMARY_COLUMNS, format_summary, summary_row
from expfam.experiment.train.streams import run_keys
from expfam.metrics import clustering_metrics


@pytest.mark.slow
def test_train_run_writes_a_complete_run_directory(small_run):
    out, config = small_run["out"], small_run["config"]
    for name in ("config.toml", "params.npz", "metrics.json", "history.csv", "run.json", *PLOT_FILES):
        assert (out / name).is_file(), name
    for name in PLOT_FILES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_config(out / "config.toml") == config
    assert read_info(out)["status"] == "completed"
    history = read_history(out)
    assert [row["step"] for row in history] == [100, 200, 300]
    assert {"loss", "elbo", "conjugation", "prior_entropy", "posterior_entropy", "nmi", "r2"} <= set(history[0])
    usage = {"active", "usage_entropy", "usage_max", "prior_max", "norm_xy", "rho_k_norm", "rho_y_norm"}
    assert usage <= set(history[0])
    assert all(1 <= row["active"] <= 10 and 0 <= row["usage_entropy"] <= np.log(10) + 1e-6 for row in history)
    assert history[-1]["active"] == small_run["metrics"]["active_clusters"]  # same params, same test split
    assert [event[:2] for event in small_run["progress"]] == [(100, 300), (200, 300), (300, 300)]
    assert any(line.startswith("data: digits") for line in small_run["log"])
    assert set(small_run["metrics"]) == {
        "nmi",
        "purity",
        "accuracy",
        "ari",
        "active_clusters",
        "recon",
        "r2",
        "rho_norm",
        "elbo",
        "iwae",
    }
    assert load_params(out)["likelihood"]["blocks"]["xy"].shape == (64, 8)


@pytest.mark.slow
def test_training_improves_the_elbo_and_clusters_better_than_chance(small_run):
    history = read_history(small_run["out"])
    assert history[-1]["elbo"] > history[0]["elbo"] + 20.0
    prepared = prepare_run(small_run["config"])
    params = load_params(small_run["out"])
    assigned = assignments(prepared.model, params, prepared.split.x_test)
    labels = prepared.split.y_test
    shuffled = clustering_metrics(np.random.default_rng(0).permutation(labels), assigned, 10)["nmi"]
    nmi = small_run["metrics"]["nmi"]
    assert nmi == pytest.approx(clustering_metrics(labels, assigned, 10)["nmi"])
    assert nmi > 0.3 and nmi > shuffled + 0.25, (nmi, shuffled)


@pytest.mark.slow
def test_evaluate_run_reproduces_the_metrics_of_train_run(small_run):
    assert metrics_equal(evaluate_run(small_run["out"]), small_run["metrics"])


@pytest.mark.slow
def test_same_seed_and_config_give_the_same_numbers_in_another_process(small_run, small_run_by_cli):
    """The in-process run and the `expfam train` process of the same configuration and seed agree to the bit."""
    other, _ = small_run_by_cli
    assert load_config(other / "config.toml") == small_run["config"]
    again = read_metrics(other)
    assert metrics_equal(again, small_run["metrics"]), (again, small_run["metrics"])
    here, there = load_params(small_run["out"]), load_params(other)
    for a, b in zip(jax.tree.leaves(here), jax.tree.leaves(there), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the inputs were checked")


@pytest.mark.parametrize(
    ("sections", "error", "match"),
    [
        ({"model": {"block": "xz"}}, ConfigurationError, r"unknown block set or block 'xz'.*hierarchical"),
        (
            {"model": {"block": "xy,nope"}},
            UnknownNameError,
            r"unknown interaction block 'nope'; registered: xk, xy, xyk",
        ),
        ({"model": {"observable": "gamma"}}, UnknownNameError, r"unknown family 'gamma'"),
        ({"model": {"observable": "bernoulli"}}, SupportError, r"value \d+\.0 at column \d+ of row \d+ .*bernoulli"),
        ({"data": {"dataset": "npz", "data": "/no/such/file.npz"}}, DataError, r"/no/such/file\.npz.*does not exist"),
        ({"data": {"dataset": "imagenet"}}, UnknownNameError, r"unknown dataset 'imagenet'"),
    ],
)
def test_bad_inputs_fail_before_training(monkeypatch, tmp_path, small_config, sections, error, match):
    monkeypatch.setattr(solo, "train", _no_training)
    with pytest.raises(error, match=match):
        train_run(small_config(**sections), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        ({"model": {"n_clusters": 1}}, r"n_clusters must be ≥ 2, got 1"),
        ({"train": {"learning_rate": -1.0}}, r"learning_rate must be a positive number, got -1.0"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(sections, match):
    with pytest.raises(ConfigurationError, match=match):
        config_from_mapping(sections)


def test_existing_run_directory_is_refused_before_training_and_left_untouched(monkeypatch, tmp_path, small_config):
    monkeypatch.setattr(solo, "train", _no_training)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"nmi": 0.9}')
    with pytest.raises(RunDirectoryError, match=r"already exists and is not empty; pass --overwrite"):
        train_run(small_config(), out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]
    assert (out / "metrics.json").read_text() == '{"nmi": 0.9}'


def test_divergence_saves_the_last_finite_params_and_history_then_reraises(monkeypatch, tmp_path, small_config):
    def diverging_train(model, params, data, config, *, callback, **_):
        callback(100, params, {"loss": np.ones(100), "elbo": -np.ones(100)})
        raise TrainingDivergedError(
            "training diverged at step 123: term 'elbo' is not finite", step=123, term="elbo", last_params=params
        )

    monkeypatch.setattr(solo, "train", diverging_train)
    monkeypatch.setattr(recorder, "quick_metrics", lambda *args: {"nmi": 0.1, "r2": 0.2})
    monkeypatch.setattr(recorder, "usage_metrics", lambda *args: {"active": 3.0})
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="step 123"):
        train_run(small_config(), out)
    info = read_info(out)
    assert info["status"] == "diverged" and info["diverged"]["step"] == 123 and info["diverged"]["term"] == "elbo"
    assert read_history(out) == [{"step": 100, "loss": 1.0, "elbo": -1.0, "nmi": 0.1, "r2": 0.2, "active": 3.0}]
    assert not (out / "metrics.json").exists()
    prepared = prepare_run(small_config())
    initial = prepared.model.init(run_keys(0)["init"], prepared.split.x_train)
    np.testing.assert_allclose(load_params(out)["prior"]["W_yk"], initial["prior"]["W_yk"])


def test_summary_row_has_the_seed_columns_and_formats_like_the_seed():
    config = config_from_mapping(
        {
            "model": {"n_latent": 128, "n_clusters": 30},
            "train": {
                "learning_rate": 1.5e-3,
                "kl_warmup_steps": 120000,
                "conj_weight": 0.1,
                "entropy_weight": 5.0,
                "posterior_entropy_weight": 10.0,
                "n_steps": 300000,
            },
        }
    )
    metrics = {"nmi": 0.5712, "active_clusters": 30, "r2": 0.99612, "purity": 0.768, "recon": 3.3412}
    row = summary_row(config, metrics, run="H1")
    assert tuple(row) == SUMMARY_COLUMNS
    table = format_summary([row]).splitlines()
    assert table[0] == (
        "| Run | n_latent | n_clusters | lr | kl_warmup | conj_weight | entropy_w | post_entropy_w | n_steps "
        "| NMI | Active | R² | Purity | Recon |"
    )
    assert table[2] == (
        "| H1 | 128 | 30 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000 | 0.57 | 30 | 0.996 | 76.8% | 3.34 |"
    )
    assert "| nan |" in format_summary([summary_row(config, {"nmi": math.nan})])


def test_parse_blocks_and_default_run_name():
    assert parse_blocks("full") == "full"
    assert parse_blocks(" xy, xk ") == ["xy", "xk"]
    config = config_from_mapping({"model": {"block": "xy,xk"}})
    assert solo.default_run_name(config, now=0).startswith("xy+xk-19")


def test_cluster_prototypes_are_the_observable_mean_at_the_conditional_latent_mean():
    import jax

    from expfam.builder import build_model
    from expfam.experiment.runs.plots import cluster_prototypes

    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 5},
        data_dim=6,
        n_latent=3,
        n_clusters=4,
        blocks=["xy", "xk"],
    )
    params = model.init(jax.random.PRNGKey(3))
    params["likelihood"]["blocks"] = {name: 0.5 + w for name, w in params["likelihood"]["blocks"].items()}
    prototypes, probabilities = cluster_prototypes(model, params)
    prior, likelihood = params["prior"], params["likelihood"]
    W, U = np.asarray(likelihood["blocks"]["xy"]), np.asarray(likelihood["blocks"]["xk"])
    sigmoid = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    for k in range(4):
        theta_y = np.asarray(prior["b_y"]) + (np.asarray(prior["W_yk"])[:, k - 1] if k else 0.0)
        theta_x = np.asarray(likelihood["a"]) + W @ sigmoid(theta_y) + (U[:, k - 1] if k else 0.0)
        np.testing.assert_allclose(prototypes[k], 5 * sigmoid(theta_x), rtol=1e-6)
    np.testing.assert_allclose(probabilities, model.mixture.cluster_probabilities(prior), rtol=1e-6)
    assert probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("active", "collapsed"), [(4, True), (9, True), (10, False), (20, False)])
def test_collapse_warning_below_half_of_the_clusters(active: int, collapsed: bool) -> None:
    warning = collapse_warning({"nmi": 0.5, "active_clusters": active}, 20)
    assert (warning is not None) is collapsed
    if collapsed:
        assert f"only {active} of 20 clusters are active" in warning
    assert collapse_warning({"nmi": 0.5}, 20) is None


def test_validation_split_holds_out_training_rows_only() -> None:
    """``validation_fraction`` evaluates on held-out training rows: the test rows are not used at all."""
    from expfam.experiment.config import config_from_mapping

    plain = prepare_run(config_from_mapping({"train": {"seed": 3}})).split
    held = prepare_run(config_from_mapping({"data": {"validation_fraction": 0.2}, "train": {"seed": 3}})).split
    assert held.x_test.shape[0] == round(0.2 * plain.x_train.shape[0])
    assert held.x_train.shape[0] + held.x_test.shape[0] == plain.x_train.shape[0]
    rows = {tuple(row) for row in plain.x_train}
    assert all(tuple(row) in rows for row in held.x_test) and all(tuple(row) in rows for row in held.x_train)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        config_from_mapping({"data": {"validation_fraction": 1.0}})
