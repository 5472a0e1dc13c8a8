"""``expfam assign``, ``expfam train --resume`` and ``--loss``, and option tables from TOML, in-process."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.datasets import load_digits

import cli.train
from expfam.experiment.config import load_config
from expfam.experiment.runs.files import read_metrics
from expfam.experiment.runs.layout import read_info

TINY_RUN = """\
[model]
n_latent = 4
n_clusters = 5

[train]
n_steps = 40
log_every = 10
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64
kl_warmup_steps = 20
conj_warmup_steps = 10
lr_warmup_steps = 5
checkpoint_every = 1

[train.loss_weights]
prior_entropy = 2.5

[data.options]
n_classes = 10

[evaluate]
n_r2_samples = 200
n_elbo_samples = 2
n_iwae_samples = 4
batch_size = 400
"""


@pytest.fixture(scope="module")
def run_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("assign") / "run.toml"
    path.write_text(TINY_RUN.replace("[data.options]\nn_classes = 10\n", ""))
    return path


@pytest.fixture(scope="module")
def trained(run_toml, tmp_path_factory):
    from typer.testing import CliRunner

    from cli.app import create_app

    out = tmp_path_factory.mktemp("assign") / "run"
    result = CliRunner().invoke(
        create_app(), ["train", "--config", str(run_toml), "--loss", "posterior_entropy=3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def test_loss_weights_from_toml_and_flags_reach_the_run(trained):
    config = load_config(trained / "config.toml")
    assert dict(config.train.loss_weights) == {"prior_entropy": 2.5, "posterior_entropy": 3.0}
    header = (trained / "history.csv").read_text().splitlines()[0].split(",")
    assert {"prior_entropy", "posterior_entropy", "elbo"} <= set(header)


def test_assign_writes_one_row_per_unlabelled_observation(trained, runner, app, tmp_path):
    x = load_digits().data[:30]
    data = tmp_path / "new.npz"
    np.savez(data, x=x)  # no labels, no split
    out = tmp_path / "assignments.csv"
    result = runner.invoke(app, ["assign", str(trained), "--data", str(data), "--out", str(out), "--probabilities"])
    assert result.exit_code == 0, result.output
    assert "assigned 30 observations" in result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30
    assert [int(r["index"]) for r in rows] == list(range(30))
    for row in rows:
        probabilities = np.array([float(row[f"p_{k}"]) for k in range(5)])
        assert abs(probabilities.sum() - 1.0) < 1e-5
        assert int(row["cluster"]) == int(np.argmax(probabilities))
        assert float(row["probability"]) == probabilities.max()


def test_assign_refuses_to_overwrite_and_wrong_shapes(trained, runner, app, tmp_path, assert_user_error):
    data = tmp_path / "x.npz"
    np.savez(data, x=load_digits().data[:3])
    out = tmp_path / "a.csv"
    out.write_text("mine")
    result = runner.invoke(app, ["assign", str(trained), "--data", str(data), "--out", str(out)])
    assert_user_error(result, "already exists", "--overwrite")
    assert out.read_text() == "mine"
    np.savez(data, x=np.zeros((3, 10)))
    result = runner.invoke(app, ["assign", str(trained), "--data", str(data), "--out", str(tmp_path / "b.csv")])
    assert_user_error(result, "shape (3, 10)", "(B, 64)")


def test_bad_loss_flags_and_option_tables_are_refused(runner, app, run_toml, tmp_path, assert_user_error):
    out = str(tmp_path / "never")
    result = runner.invoke(app, ["train", "--config", str(run_toml), "--loss", "prior_entropy", "--out", out])
    assert_user_error(result, "NAME=WEIGHT")
    result = runner.invoke(app, ["train", "--config", str(run_toml), "--loss", "bogus=1", "--out", out])
    assert_user_error(result, "bogus", "prior_entropy")
    bad = tmp_path / "bad.toml"
    bad.write_text(run_toml.read_text() + "\n[model.observable_options]\ncolour = 1\n")
    assert_user_error(runner.invoke(app, ["train", "--config", str(bad), "--out", out]), "colour", "n_trials")
    bad.write_text(run_toml.read_text() + "\n[data.options]\nshuffle = true\n")
    assert_user_error(runner.invoke(app, ["train", "--config", str(bad), "--out", out]), "shuffle", "no options")
    bad.write_text(run_toml.read_text() + "\n[model.block_options.xk]\nscale = 1\n")
    assert_user_error(runner.invoke(app, ["train", "--config", str(bad), "--out", out]), "xk", "does not use")
    assert not (tmp_path / "never").exists()


def test_ctrl_c_exits_130_and_resume_ends_with_the_uninterrupted_numbers(
    run_toml, trained, runner, app, tmp_path, monkeypatch, assert_user_error
):
    reference = trained  # the same configuration (file and --loss flag), trained without interruption
    original = cli.train.ProgressBar

    class InterruptingBar(original):
        def __call__(self, step, n_steps, row):
            if step == 30:
                raise KeyboardInterrupt
            super().__call__(step, n_steps, row)

    monkeypatch.setattr(cli.train, "ProgressBar", InterruptingBar)
    out = tmp_path / "run"
    arguments = ["train", "--config", str(run_toml), "--loss", "posterior_entropy=3", "--out", str(out)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 130, result.output
    assert "--resume" in result.stderr
    assert read_info(out)["status"] == "interrupted"
    monkeypatch.setattr(cli.train, "ProgressBar", original)
    assert_user_error(runner.invoke(app, ["train", "--resume", str(out), "--n-steps", "5"]), "--n-steps")
    result = runner.invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert read_info(out)["status"] == "completed"
    assert read_metrics(out) == read_metrics(reference)
