"""Regression tests of issue 11: every input that used to end in a traceback, or left a run that
looked finished when it was not, now ends with one line ``error: ...`` and the documented exit code.

Exit codes: 2 bad input (refused before any work and before any file is touched), 1 a run that
failed (a write failure), 130 interrupted. A run is finished only when its ``run.json`` says
``completed``; ``sweep``, ``compare``, ``evaluate`` and ``assign`` treat anything else as unfinished.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest

import expfam.experiment.runs.recorder
import expfam.experiment.runs.solo
from expfam.data.idx import write_idx
from expfam.errors import RunWriteError
from expfam.experiment.config import MAX_INT32, MAX_N_TRIALS, MAX_SEED, RunConfig, config_from_mapping
from expfam.experiment.prepare import check_memory
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.files import write_config, write_metrics
from expfam.experiment.runs.layout import is_finished, read_info, require_finished, write_info
from expfam.experiment.train.divergence import diverged_error

HUGE = "99999999999999999999"


@pytest.fixture()
def old_run(finished_run, tmp_path):
    """A copy of the finished tiny run, to be targeted with --overwrite."""
    return shutil.copytree(finished_run, tmp_path / "old")


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "internal error" not in last, result.output
    return last


# ----------------------------------------------------------------- values the types cannot hold
@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--n-clusters", HUGE], ["n_clusters", HUGE, str(MAX_INT32)]),
        (["--n-latent", HUGE], ["n_latent", HUGE, str(MAX_INT32)]),
        (["--seed", HUGE], ["seed", HUGE, str(MAX_SEED)]),
        (["--n-trials", HUGE], ["n_trials", HUGE, str(MAX_N_TRIALS)]),
        (["--n-trials", str(MAX_N_TRIALS + 1)], ["n_trials", "float32"]),
        (["--seed", "-1"], ["seed", "-1", "0..4294967295"]),
        (["--n-clusters", str(2**31 - 1)], ["n_clusters", "2147483647", "parameter array"]),
        (["--batch-size", "2000000000", "--n-mc-samples", "1000"], ["batch_size=2000000000", "GiB", "lower"]),
    ],
    ids=["n_clusters", "n_latent", "seed", "n_trials", "n_trials_float32", "negative_seed", "array", "memory"],
)
def test_values_beyond_the_numeric_types_are_refused_and_an_overwritten_run_survives(
    runner, app, tiny_run_toml, old_run, snapshot_of, no_training, flags, fragments
):
    before = snapshot_of(old_run)
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(old_run), "--overwrite", *flags])
    line = _one_error_line(result, 2)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert snapshot_of(old_run) == before


def test_a_huge_batch_size_in_a_config_file(runner, app, tiny_run_toml, tmp_path, no_training):
    config = tmp_path / "run.toml"
    config.write_text(tiny_run_toml.read_text().replace("batch_size = 8", f"batch_size = {HUGE}"))
    line = _one_error_line(runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "r")]), 2)
    assert "batch_size" in line and HUGE in line and str(MAX_INT32) in line
    assert not (tmp_path / "r").exists()


def test_a_huge_n_trials_in_a_sweep_file(runner, app, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'[[phases]]\nname = "P"\ngrid = {{ n_trials = [4, {MAX_N_TRIALS * 4}] }}\n')
    line = _one_error_line(runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "out")]), 2)
    assert "n_trials" in line and str(MAX_N_TRIALS) in line


def test_check_memory_names_the_sizes_and_the_limit():
    config = config_from_mapping({"model": {"n_latent": 100, "n_clusters": 100}})
    check_memory(config, 64, limit=2**40)
    with pytest.raises(Exception, match=r"n_clusters=100, n_latent=100 and 64 pixels .* GiB of this machine"):
        check_memory(config, 64, limit=2**20)


@pytest.mark.parametrize("block", ["hierarchical", "full"])
def test_check_memory_admits_the_reference_mnist_shapes(block):
    """The seed's shapes train in about 1.2 GB of process memory (docs/benchmarks.md): a 4 GiB machine must admit them."""
    from expfam.builder import build_model
    from expfam.experiment.prepare import estimated_bytes, parameter_shapes

    config = config_from_mapping(
        {"model": {"block": block, "n_latent": 128, "n_clusters": 30}, "train": {"batch_size": 512, "n_mc_samples": 10}}
    )
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 16},
        data_dim=784,
        n_latent=128,
        n_clusters=30,
        blocks=block,
    )
    shapes = parameter_shapes(model)
    check_memory(config, 784, limit=4 * 2**30, parameter_shapes=shapes)
    needed, largest = estimated_bytes(config, 784, shapes)
    # the bound still counts what cannot be avoided: Adam's 4 copies of the parameters and the samples' parameters
    assert needed >= 4 * (4 * sum(math.prod(shape) for shape in shapes) + 512 * 10 * (784 + 128))
    assert largest == (784 * 128 * 29 if block == "full" else 784 * 128)


# ----------------------------------------------------------------- data
@pytest.mark.parametrize("empty", ["x_train", "x_test"])
def test_npz_with_no_rows(runner, app, tiny_run_toml, tmp_path, no_training, empty):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 5, (40, 16)), "x_test": rng.integers(0, 5, (12, 16))}
    arrays[empty] = np.zeros((0, 16), dtype=np.int64)
    np.savez(tmp_path / "empty.npz", **arrays)
    flags = ["--config", str(tiny_run_toml), "--data", str(tmp_path / "empty.npz"), "--out", str(tmp_path / "r")]
    line = _one_error_line(runner.invoke(app, ["train", *flags]), 2)
    assert empty in line and "(0, 16)" in line and "no images" in line


def test_idx_with_no_training_images(runner, app, tmp_path, no_training):
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((0, 4, 4), dtype=np.uint8), "images")
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 4, 4), dtype=np.uint8), "images")
    flags = ["--dataset", "idx", "--data", str(folder), "--out", str(tmp_path / "r")]
    line = _one_error_line(runner.invoke(app, ["train", *flags]), 2)
    assert "train-images-idx3-ubyte" in line and "no images" in line


def test_a_negative_image_shape_is_refused_before_training(runner, app, tiny_run_toml, tmp_path, no_training):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "neg.npz",
        x_train=rng.integers(0, 5, (40, 16)),
        x_test=rng.integers(0, 5, (12, 16)),
        image_shape=np.array([-4, -4]),
    )
    flags = ["--config", str(tiny_run_toml), "--data", str(tmp_path / "neg.npz"), "--out", str(tmp_path / "r")]
    line = _one_error_line(runner.invoke(app, ["train", *flags]), 2)
    assert "image_shape (-4, -4)" in line and "positive" in line


# ----------------------------------------------------------------- observables, files
def test_an_observable_that_cannot_model_pixels_is_refused_and_not_offered(runner, app, tiny_run_toml, tmp_path):
    flags = ["--config", str(tiny_run_toml), "--observable", "categorical", "--out", str(tmp_path / "r")]
    line = _one_error_line(runner.invoke(app, ["train", *flags]), 2)
    assert "'categorical'" in line and "binomial" in line
    text = runner.invoke(app, ["train", "--help"]).output
    observable_help = " ".join(text[text.index("--observable") :].split())[:200]
    assert "binomial" in observable_help and "categorical" not in observable_help


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_files_that_are_not_utf8(runner, app, tmp_path, command):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[model]\nblock = "café"\n'.encode("latin-1"))
    args = ["train", "--config", str(path)] if command == "train" else ["sweep", str(path)]
    line = _one_error_line(runner.invoke(app, [*args, "--out", str(tmp_path / "r")]), 2)
    assert "not UTF-8" in line and "0xe9" in line and "latin1.toml" in line


def test_a_folder_given_as_config_is_named_a_folder(runner, app, tmp_path):
    line = _one_error_line(runner.invoke(app, ["train", "--config", str(tmp_path), "--out", str(tmp_path / "r")]), 2)
    assert "is a folder, not a file" in line and "does not exist" not in line


def test_an_unwritable_out_is_refused_before_its_files_are_removed(
    runner, app, tiny_run_toml, old_run, snapshot_of, deny_temporary_files, no_training
):
    """Permission denied on the temporary file (simulated: the tests may run as root, which ignores modes)."""
    deny_temporary_files(old_run)
    before = snapshot_of(old_run)
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(old_run), "--overwrite"])
    line = _one_error_line(result, 2)
    assert "cannot write in" in line and "Permission denied" in line and "--out" in line
    assert snapshot_of(old_run) == before


def test_a_write_failure_mid_run_exits_1_and_marks_the_run_failed(runner, app, tiny_run_toml, tmp_path, monkeypatch):
    """Disk full while saving the parameters: one line, exit 1, status "failed", the checkpoint named for --resume."""

    def full(run_dir, params):
        raise RunWriteError(f"cannot write {str(run_dir / 'params.npz')!r} (No space left on device); free disk space")

    monkeypatch.setattr(expfam.experiment.runs.recorder, "save_params", full)
    out = tmp_path / "r"
    line = _one_error_line(runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(out)]), 1)
    assert "No space left on device" in line and f"expfam train --resume {out}" in line
    assert read_info(out)["status"] == "failed" and not is_finished(out)


def test_an_os_error_outside_the_run_files_is_one_line_exit_1(runner, app, tiny_run_toml, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", "/somewhere")

    monkeypatch.setattr(expfam.experiment.runs.solo, "prepare_run", broken)
    line = _one_error_line(runner.invoke(app, ["train", "--out", str(tmp_path / "r")]), 1)
    assert "'/somewhere'" in line and "No space left on device" in line


# ----------------------------------------------------------------- damaged or edited runs
def _edit_config(run, key, value):
    text = (run / "config.toml").read_text()
    (run / "config.toml").write_text(re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1))


def _rewrite_params(run, change):
    arrays = dict(np.load(run / "params.npz"))
    change(arrays)
    np.savez(run / "params.npz", **arrays)


DAMAGES = {
    "truncated params.npz": (
        lambda run: (run / "params.npz").write_bytes((run / "params.npz").read_bytes()[:300]),
        ["params.npz", "not a readable parameter archive"],
    ),
    "params.npz not an archive": (
        lambda run: (run / "params.npz").write_bytes(b"\x80\x04not a zip"),
        ["params.npz", "not an .npz zip archive"],
    ),
    "renamed array": (
        lambda run: _rewrite_params(run, lambda a: a.__setitem__("renamed", a.pop("rho_y"))),
        ["no array 'rho_y'"],
    ),
    "reshaped array": (
        lambda run: _rewrite_params(run, lambda a: a.__setitem__("rho_y", np.zeros((7, 5)))),
        ["'rho_y' has shape (7, 5)", "needs (3,)"],
    ),
    "n_latent edited": (lambda run: _edit_config(run, "n_latent", 5), ["n_latent = 5", "trained with 3"]),
    "n_clusters edited": (lambda run: _edit_config(run, "n_clusters", 3), ["n_clusters = 3", "trained with 2"]),
    "block set edited": (lambda run: _edit_config(run, "block", '"full"'), ["blocks", "trained with ['xy']"]),
    "observable edited": (lambda run: _edit_config(run, "observable", '"poisson"'), ["observable = 'poisson'"]),
    "n_trials edited": (lambda run: _edit_config(run, "n_trials", 8), ["n_trials = 8", "trained with 4"]),
    "status running": (
        lambda run: write_info(run, {**read_info(run), "status": "running"}),
        ["not finished", "'running'", "--resume"],
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("command", ["evaluate", "assign"])
def test_evaluate_and_assign_refuse_a_damaged_or_mismatched_run(
    runner, app, finished_run, tiny_npz, tmp_path, snapshot_of, command, damage
):
    run = shutil.copytree(finished_run, tmp_path / "run")
    change, fragments = DAMAGES[damage]
    change(run)
    before = snapshot_of(run)
    args = [command, str(run)] + (
        ["--data", str(tiny_npz), "--out", str(tmp_path / "a.csv")] if command == "assign" else []
    )
    line = _one_error_line(runner.invoke(app, args), 2)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert snapshot_of(run) == before and not (tmp_path / "a.csv").exists()


def test_evaluate_accepts_the_undamaged_run(runner, app, finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    assert "metrics.json: identical" in result.stderr


def _fake_run(path, metrics_text: str, status: str = "completed"):
    path.mkdir(parents=True)
    write_config(path, RunConfig())
    (path / "metrics.json").write_text(metrics_text)
    write_info(path, {"status": status})
    return path


@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [('{"nmi": "high"}', "'nmi' is str 'high', not a number"), ("[1, 2]", "holds a JSON list")],
)
def test_compare_refuses_metrics_that_are_not_numbers(runner, app, tmp_path, metrics, fragment):
    good = _fake_run(tmp_path / "good", '{"nmi": 0.5}')
    bad = _fake_run(tmp_path / "bad", metrics)
    line = _one_error_line(runner.invoke(app, ["compare", str(good), str(bad)]), 2)
    assert fragment in line and "metrics.json" in line


def test_compare_says_a_run_is_unfinished_even_with_metrics(runner, app, tmp_path):
    run = _fake_run(tmp_path / "killed", '{"nmi": 0.5}', status="running")  # killed while plotting
    line = _one_error_line(runner.invoke(app, ["compare", str(run)]), 2)
    assert "not finished" in line and f"expfam train --resume {run}" in line


def test_require_finished_names_each_status(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with pytest.raises(RunDirectoryError, match=r"no readable run\.json"):
        require_finished(run)
    for status, fragment in [("interrupted", "resume"), ("diverged", "learning-rate"), ("failed", "resume")]:
        write_info(run, {"status": status})
        assert not is_finished(run)
        with pytest.raises(RunDirectoryError, match=fragment):
            require_finished(run)
    (run / "run.json").write_bytes(b"\xff\xfe")  # damaged: unfinished, not a crash
    assert not is_finished(run)
    write_info(run, {"status": "completed"})
    assert is_finished(run)
    require_finished(run)


def test_a_resumed_sweep_retrains_a_trial_killed_after_its_metrics(tmp_path):
    """metrics.json present, status "running" (killed while plotting): the sweep trains it again."""
    from expfam.experiment.sweeps.run import run_sweep
    from expfam.experiment.sweeps.spec import parse_sweep

    spec = parse_sweep({"phases": [{"name": "P", "grid": {"seed": [1, 2]}}]})
    for trial in spec.trials:
        (tmp_path / trial.name).mkdir()
        write_config(tmp_path / trial.name, trial.config)
        write_metrics(tmp_path / trial.name, {"nmi": 0.25})
    write_info(tmp_path / spec.trials[0].name, {"status": "completed"})
    write_info(tmp_path / spec.trials[1].name, {"status": "running"})
    trained = []

    def runner(config, run_dir):
        trained.append(run_dir.name)
        return {"nmi": 0.75}

    results = run_sweep(spec, tmp_path, runner=runner, plots=False)
    assert trained == [spec.trials[1].name]
    assert [r.reused for r in results] == [True, False]
    assert results[1].metrics["nmi"] == 0.75 and is_finished(tmp_path / spec.trials[1].name)


# ----------------------------------------------------------------- interrupts and divergence
def test_an_interrupt_while_plotting_exits_130_and_leaves_an_unfinished_run(
    runner, app, tiny_run_toml, tmp_path, monkeypatch
):
    import expfam.experiment.runs.plots

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(expfam.experiment.runs.plots, "save_run_plots", interrupted)
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(out)])
    assert result.exit_code == 130, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: kept") and "checkpoint.npz (step 4)" in last
    assert f"expfam train --resume {out}" in last
    assert (out / "metrics.json").is_file() and read_info(out)["status"] == "interrupted" and not is_finished(out)


def test_an_interrupt_before_training_says_nothing_was_written(runner, app, tiny_run_toml, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(expfam.experiment.runs.solo, "prepare_run", interrupted)
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == "interrupted: before training started; no run files were written"


def test_a_non_finite_gradient_does_not_blame_a_loss_weight():
    history = {"loss": np.ones(3), "elbo": np.ones(3)}
    error = diverged_error(history, offset=10, bad_step=11, params={})
    assert "the gradient is not finite" in str(error) and "weight of" not in str(error)
    assert "--learning-rate" in str(error) and error.term == "gradient"
    history["elbo"][1] = np.nan
    assert "weight of 'elbo'" in str(diverged_error(history, offset=10, bad_step=11, params={}))


def test_a_diverged_run_records_the_step_of_the_error(tiny_run_toml, tmp_path, monkeypatch):
    from expfam.errors import TrainingDivergedError
    from expfam.experiment.config import load_config
    from expfam.experiment.runs.solo import train_run

    def diverging_train(model, params, data, config, *, callback, **_):
        callback(2, params, {"loss": np.ones(2), "elbo": -np.ones(2)})
        raise TrainingDivergedError("training diverged at step 3", step=3, term="elbo", last_params=params)

    monkeypatch.setattr(expfam.experiment.runs.solo, "train", diverging_train)
    with pytest.raises(TrainingDivergedError):
        train_run(load_config(tiny_run_toml), tmp_path / "r", plots=False)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "diverged" and info["steps"] == info["diverged"]["step"] == 3


def test_a_corrupt_data_archive_does_not_suggest_allow_pickle(runner, app, tiny_run_toml, tmp_path, no_training):
    (tmp_path / "corrupt.npz").write_bytes(b"\x80\x04 this is not a zip file")
    flags = ["--config", str(tiny_run_toml), "--data", str(tmp_path / "corrupt.npz"), "--out", str(tmp_path / "r")]
    line = _one_error_line(runner.invoke(app, ["train", *flags]), 2)
    assert "corrupt.npz" in line and "not an .npz archive" in line and "pickle" not in line


def test_resume_refuses_a_run_whose_config_was_edited(runner, app, finished_run, tmp_path, snapshot_of):
    run = shutil.copytree(finished_run, tmp_path / "run")
    write_info(run, {**read_info(run), "status": "interrupted"})
    _edit_config(run, "n_latent", 5)
    before = snapshot_of(run)
    line = _one_error_line(runner.invoke(app, ["train", "--resume", str(run)]), 2)
    assert "n_latent = 5" in line and "trained with 3" in line
    assert snapshot_of(run) == before
