"""Bad inputs end with one line ``error: ...`` naming the problem, exit code 2, and no traceback.

None of these starts training: each is refused while the inputs are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import expfam.experiment.runs.solo


@pytest.fixture(autouse=True)
def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(expfam.experiment.runs.solo, "train", refuse)


def _train(runner, app, tmp_path, *flags):
    return runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *flags])


def test_missing_data_path(runner, app, tmp_path, assert_user_error):
    missing = tmp_path / "nowhere.npz"
    result = _train(runner, app, tmp_path, "--dataset", "npz", "--data", str(missing))
    assert_user_error(result, str(missing), "does not exist")


def test_file_dataset_without_a_path(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--dataset", "npz"), "needs a path", "--data")


def test_folder_of_files_that_are_not_idx(runner, app, tmp_path, assert_user_error):
    folder = tmp_path / "junk"
    folder.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (folder / name).write_bytes(b"this is not an IDX file at all")
    line = assert_user_error(_train(runner, app, tmp_path, "--dataset", "idx", "--data", str(folder)))
    assert "idx" in line.lower() and "magic" in line.lower(), line


def test_npz_with_wrong_shapes(runner, app, tmp_path, assert_user_error):
    path = tmp_path / "bad.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 17, (20, 64)),
        y_train=np.zeros(20, dtype=np.int64),
        x_test=rng.integers(0, 17, (5, 49)),
        y_test=np.zeros(5, dtype=np.int64),
    )
    assert_user_error(_train(runner, app, tmp_path, "--dataset", "npz", "--data", str(path)), "64", "49")


def test_npz_counts_outside_the_support(runner, app, tmp_path, assert_user_error):
    path = tmp_path / "counts.npz"
    x = np.zeros((20, 64), dtype=np.int64)
    x[3, 7] = 17
    np.savez(path, x_train=x, y_train=np.zeros(20, dtype=np.int64), x_test=x[:5], y_test=np.zeros(5, dtype=np.int64))
    assert_user_error(
        _train(runner, app, tmp_path, "--dataset", "npz", "--data", str(path), "--n-trials", "16"),
        "17",
        "row 3",
        "column 7",
    )


def test_data_outside_the_observable_support(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--observable", "bernoulli"), "outside the support", "bernoulli")


def test_unknown_block(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--block", "xz"), "'xz'", "hierarchical", "xyk")


def test_unknown_block_in_a_list(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--block", "xy,zz"), "'zz'", "xk, xy, xyk")


def test_unknown_observable(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--observable", "gamma"), "'gamma'", "binomial", "poisson")


def test_one_cluster(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--n-clusters", "1"), "n_clusters", "got 1")


def test_negative_learning_rate(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--learning-rate", "-0.01"), "learning_rate", "-0.01")


def test_bad_rho_mode(runner, app, tmp_path, assert_user_error):
    assert_user_error(_train(runner, app, tmp_path, "--rho-mode", "magic"), "rho_mode", "'magic'")


def test_bad_config_file(runner, app, tmp_path, assert_user_error):
    config = tmp_path / "run.toml"
    config.write_text("[train]\nlearning_rat = 0.1\n")
    assert_user_error(_train(runner, app, tmp_path, "--config", str(config)), "learning_rat", "[train]")
    assert_user_error(
        _train(runner, app, tmp_path, "--config", str(tmp_path / "none.toml")), "none.toml", "does not exist"
    )


def test_existing_run_directory_without_overwrite_is_left_untouched(runner, app, tmp_path, assert_user_error):
    run = tmp_path / "run"
    run.mkdir()
    files = {"config.toml": "old config", "metrics.json": '{"nmi": 0.5}', "notes.txt": "mine"}
    for name, text in files.items():
        (run / name).write_text(text)
    before = {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in run.iterdir()}
    assert_user_error(_train(runner, app, tmp_path), str(run), "--overwrite")
    assert {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in run.iterdir()} == before


def test_evaluate_a_missing_run_directory(runner, app, tmp_path, assert_user_error):
    assert_user_error(runner.invoke(app, ["evaluate", str(tmp_path / "nope")]), "nope", "does not exist")


def test_typer_usage_errors_exit_2(runner, app):
    result = runner.invoke(app, ["train", "--no-such-flag"])
    assert result.exit_code == 2 and "--no-such-flag" in result.output
    result = runner.invoke(app, ["train", "--n-steps", "many"])
    assert result.exit_code == 2 and "--n-steps" in result.output


def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.app", "train", "--n-clusters", "1", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == ["error: n_clusters must be ≥ 2, got 1; use at least 2 clusters"], (
        result.stderr
    )
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_exits_1_with_one_error_line(runner, app, monkeypatch, tmp_path):
    """Divergence is a failed run, not bad input: exit 1 and ``error: ...`` naming the step and term."""
    import cli.train
    from expfam.errors import TrainingDivergedError

    def diverge(config, out, **options):
        raise TrainingDivergedError("training diverged at step 17: 'elbo' is nan", step=17, term="elbo")

    monkeypatch.setattr(cli.train, "train_run", diverge)
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: training diverged at step 17")
    assert "Traceback" not in result.output
