"""Messages that used to mislead (issue 25, finding 8), each with what it must say now.

The tiny finished run (``finished_run``, tests/cli/conftest.py) models 16 counts in 0..4 (4×4 images).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from cli.app import _os_error_text
from expfam.experiment.config import config_from_mapping, load_config
from expfam.experiment.config_text import read_toml
from expfam.experiment.prepare import prepare_run
from expfam.experiment.runs.atomic import RunDirectoryError, _write_error
from expfam.experiment.runs.checkpoints import save_checkpoint
from expfam.experiment.runs.health import elbo_floor, elbo_warning
from expfam.experiment.runs.layout import INFO_FILE, MODEL_FILE
from expfam.experiment.runs.solo import resume_run
from expfam.experiment.runs.trained import load_run
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state


def test_a_reader_that_goes_away_ends_the_command_quietly_with_141(tmp_path):
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line is written (as `expfam plugins | head -1` can)
    process = subprocess.run(
        [sys.executable, "-m", "expfam", "plugins"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=300
    )
    os.close(write)
    assert process.returncode == 141, process.stderr
    assert process.stderr == "", process.stderr  # no error line, no disk-space hint, no "Exception ignored"


@pytest.mark.parametrize(
    ("code", "wanted", "unwanted"),
    [
        (errno.EPIPE, None, "disk"),
        (errno.ENOSPC, "free disk space", "permissions"),
        (errno.EACCES, "permissions", "disk"),
        (errno.EISDIR, "folder", "disk"),
    ],
)
def test_advice_for_a_failed_read_or_write_follows_its_cause(code, wanted, unwanted, tmp_path):
    error = OSError(code, os.strerror(code), str(tmp_path / "file"))
    for text in (_os_error_text(error), str(_write_error(tmp_path / "file", error))):
        assert unwanted not in text, text
        assert wanted is None or wanted in text, text
        assert os.strerror(code) in text, text


def test_assign_out_naming_a_folder_is_bad_input_that_says_so(finished_run, runner, app, tmp_path, assert_user_error):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.ones((3, 16), dtype=np.int64))
    folder = tmp_path / "folder"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["assign", str(finished_run), "--data", str(data), "--out", str(folder), *extra])
        line = assert_user_error(result, "is a folder", "assignments.csv")
        assert "disk" not in line
    assert list(folder.iterdir()) == []


def _assign_error(runner, app, finished_run, tmp_path, assert_user_error, x, *fragments):
    data = tmp_path / "x.npz"
    np.savez(data, x=x)
    result = runner.invoke(app, ["assign", str(finished_run), "--data", str(data), "--out", str(tmp_path / "a.csv")])
    return assert_user_error(result, *fragments)


def test_a_wrong_image_shape_is_reported_as_stored(finished_run, runner, app, tmp_path, assert_user_error):
    x = np.ones((10, 7, 9), dtype=np.int64)
    line = _assign_error(runner, app, finished_run, tmp_path, assert_user_error, x, "(10, 7, 9)", "(4, 4)")
    assert "(10, 63)" not in line


def test_one_row_stored_as_1d_is_told_to_be_2d(finished_run, runner, app, tmp_path, assert_user_error):
    x = np.ones(16, dtype=np.int64)
    line = _assign_error(runner, app, finished_run, tmp_path, assert_user_error, x, "(16,)", "1-D", "reshape(1, -1)")
    assert "no images or no pixels" not in line


def test_assign_gives_count_advice_it_can_follow(finished_run, runner, app, tmp_path, assert_user_error):
    x = np.full((3, 16), 9, dtype=np.int64)
    line = _assign_error(runner, app, finished_run, tmp_path, assert_user_error, x, "0..4", "rescale")
    assert "pass n_trials" not in line and "--n-trials" not in line  # assign has no such option
    assert "--n-trials" not in [param.opts[0] for param in _assign_params(app)]


def _assign_params(app):
    import typer.main

    return typer.main.get_command(app).commands["assign"].params


def test_training_count_advice_names_the_option(runner, app, tmp_path, assert_user_error):
    data = tmp_path / "big.npz"
    np.savez(data, x_train=np.full((4, 16), 9), x_test=np.full((2, 16), 9))
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--dataset", "npz", "--data", str(data), "--n-trials", "4", "--out", str(out)]
    )
    assert_user_error(result, "--n-trials", "largest count, 9")
    assert not out.exists()


def test_a_resumed_checkpoint_of_the_wrong_shape_is_named(tiny_run_toml, finished_run, tmp_path):
    other = tmp_path / "other"  # the checkpoint of a run of another size, consistent in itself (step 0)
    prepared = prepare_run(config_from_mapping({"model": {"n_latent": 5}}, load_config(tiny_run_toml)))
    train = prepared.config.train
    params = prepared.model.init(jax.random.key(train.seed), prepared.split.x_train)
    other.mkdir()
    save_checkpoint(other, initial_state(params, train, make_optimizer(train)))
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    info = json.loads((run / INFO_FILE).read_text())
    (run / INFO_FILE).write_text(json.dumps({**info, "status": "interrupted"}))
    shutil.copy(other / "checkpoint.npz", run / "checkpoint.npz")
    with pytest.raises(RunDirectoryError) as caught:
        resume_run(run, plots=False)
    message = str(caught.value)
    assert "checkpoint.npz" in message and "params.npz" not in message, message


def test_a_config_file_may_be_any_readable_file(tmp_path):
    assert read_toml("/dev/null", "config file") == {}
    read, write = os.pipe()  # a process substitution, <(...), is a pipe named /dev/fd/N
    os.write(write, b"[model]\nn_latent = 7\n")
    os.close(write)
    try:
        assert read_toml(f"/dev/fd/{read}", "config file") == {"model": {"n_latent": 7}}
    finally:
        os.close(read)
    with pytest.raises(Exception, match="does not exist"):
        read_toml(tmp_path / "missing.toml", "config file")


def test_a_missing_model_json_makes_no_claim_about_versions(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / MODEL_FILE).unlink()
    with pytest.raises(RunDirectoryError) as caught:
        load_run(run)
    message = str(caught.value)
    assert MODEL_FILE in message and "version 0.2" not in message and "since version" not in message, message


def test_the_elbo_floor_is_a_hundred_times_the_uniform_distribution():
    # 16 counts in 0..4: the uniform distribution scores -16 log 5 per observation
    assert elbo_floor(16, 4) == pytest.approx(-100 * 16 * np.log(5))
    assert elbo_warning(-29.8, data_dim=16, n_trials=4, step=2, learning_rate=3e-3) is None  # a fresh model
    assert elbo_warning(float("nan"), data_dim=16, n_trials=4, step=2, learning_rate=3e-3) is None  # divergence
    text = elbo_warning(-1.5e11, data_dim=16, n_trials=4, step=200, learning_rate=1e9)
    assert text is not None and "step 200" in text and "--learning-rate (now 1e+09)" in text


def test_a_learning_rate_that_wrecks_the_elbo_gets_a_warning(tiny_run_toml, runner, app, tmp_path):
    args = ["train", "--config", str(tiny_run_toml), "--out", str(tmp_path / "run"), "--learning-rate", "1e9"]
    result = runner.invoke(app, [*args, "--n-steps", "40", "--log-every", "20"])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: the ELBO")]
    assert len(warnings) == 1, result.output
    assert "--learning-rate (now 1e+09)" in warnings[0]
