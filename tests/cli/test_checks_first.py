"""Regression tests of issue 25 (deliverables 1, 3, 5, 6): every check runs before anything on disk changes.

A refused ``train --overwrite``, ``train --resume`` or ``sweep`` exits 2 with one line and leaves
every file byte-identical; ``--overwrite`` replaces only regular run files; ``--elbo-estimator``
takes only a term that estimates the ELBO; a checkpoint is verified before it is trusted; a
diverged run's message and files agree; a sweep's bad input is refused before any trial and a
failed trial ends the sweep with ``error:``.
"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest

from expfam.experiment.runs.files import read_history
from expfam.experiment.runs.layout import read_info, write_info


@pytest.fixture()
def two_devices(monkeypatch):
    """Two visible devices (the one device twice): enough for the checks, which only count them."""
    one = jax.devices()[0]
    monkeypatch.setattr(jax, "devices", lambda *args, **kwargs: [one, one])


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "internal error" not in last, result.output
    return last


TOO_MANY = str(len(jax.devices()) + 1)

#: refused input → (flags, fragments of the one error line)
REFUSED = {
    "devices": (["--devices", TOO_MANY], [f"--devices {TOO_MANY}", "device(s) visible"]),
    "kmeans rows": (
        ["--block", "full", "--cluster-init", "kmeans", "--n-clusters", "50"],
        ["'kmeans' needs at least n_clusters = 50 training rows, got 40"],
    ),
    "latent kmeans rows": (
        ["--cluster-init", "latent_kmeans", "--cluster-init-step", "0", "--n-clusters", "50"],
        ["'latent_kmeans' needs at least n_clusters = 50 training rows, got 40"],
    ),
    "elbo estimator role": (
        ["--elbo-estimator", "conjugation"],
        ["'conjugation'", "does not estimate the ELBO", "elbo, rao_blackwell_elbo"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_overwrite_leaves_the_finished_run_byte_identical(
    runner, app, tiny_run_toml, finished_run, tmp_path, snapshot_of, no_training, case
):
    old = shutil.copytree(finished_run, tmp_path / "old")
    before = snapshot_of(old)
    flags, fragments = REFUSED[case]
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(old), "--overwrite", *flags])
    line = _one_error_line(result, 2)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert snapshot_of(old) == before


def test_a_batch_that_does_not_split_over_the_devices_leaves_the_run_byte_identical(
    runner, app, tiny_run_toml, finished_run, tmp_path, snapshot_of, no_training, two_devices
):
    old = shutil.copytree(finished_run, tmp_path / "old")
    before = snapshot_of(old)
    flags = ["--devices", "2", "--batch-size", "7"]
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(old), "--overwrite", *flags])
    line = _one_error_line(result, 2)
    assert "batch_size 7 does not split over 2 devices" in line
    assert snapshot_of(old) == before


def test_overwrite_refuses_a_folder_where_a_run_file_belongs_and_removes_nothing(
    runner, app, tiny_run_toml, finished_run, tmp_path, snapshot_of, no_training
):
    old = shutil.copytree(finished_run, tmp_path / "old")
    (old / "metrics.json").unlink()
    (old / "metrics.json").mkdir()
    (old / "metrics.json" / "mine.txt").write_text("the user's file")
    before = snapshot_of(old)
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(old), "--overwrite"])
    line = _one_error_line(result, 2)
    assert "metrics.json' is a folder" in line and "nothing was removed" in line
    assert snapshot_of(old) == before and (old / "config.toml").is_file() and (old / "params.npz").is_file()


def test_a_refused_new_run_writes_no_folder(runner, app, tiny_run_toml, tmp_path, no_training):
    out = tmp_path / "new" / "run"
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(out), "--devices", TOO_MANY])
    _one_error_line(result, 2)
    assert not (tmp_path / "new").exists()


def test_a_refused_resume_keeps_the_run_interrupted(runner, app, finished_run, tmp_path, snapshot_of, no_training):
    run = shutil.copytree(finished_run, tmp_path / "run")
    write_info(run, {**read_info(run), "status": "interrupted"})
    before = snapshot_of(run)
    line = _one_error_line(runner.invoke(app, ["train", "--resume", str(run), "--devices", TOO_MANY]), 2)
    assert "device(s) visible" in line
    assert snapshot_of(run) == before and read_info(run)["status"] == "interrupted"


# ----------------------------------------------------------------- checkpoints (deliverable 5)
def _rewrite_checkpoint(run, **arrays):
    flat = dict(np.load(run / "checkpoint.npz"))
    flat.update(arrays)
    np.savez(run / "checkpoint.npz", **flat)


def _nan_params(run):
    flat = dict(np.load(run / "checkpoint.npz"))
    name = sorted(key for key in flat if key.startswith("params/"))[0]
    flat[name] = np.full_like(flat[name], np.nan)
    np.savez(run / "checkpoint.npz", **flat)


CHECKPOINT_DAMAGES = {
    "step above n_steps": (
        lambda run: _rewrite_checkpoint(run, step=np.int32(100000)),
        ["step 100000 is outside 0..4"],
    ),
    "negative step": (lambda run: _rewrite_checkpoint(run, step=np.int32(-2)), ["step -2 is outside 0..4"]),
    "step not in history": (lambda run: _rewrite_checkpoint(run, step=np.int32(3)), ["step 3 is not a step of"]),
    "malformed key": (
        lambda run: _rewrite_checkpoint(run, key=np.zeros(3, np.uint32)),
        ["key has shape (3,)", "expected a random key of shape (2,)"],
    ),
    "key of floats": (
        lambda run: _rewrite_checkpoint(run, data_key=np.zeros(2, np.float32)),
        ["data_key has shape (2,) and dtype float32"],
    ),
    "non-finite parameters": (_nan_params, ["is not finite (NaN or inf) at step 4", "no finite checkpoint"]),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGES))
def test_resume_verifies_the_checkpoint_before_trusting_it(
    runner, app, finished_run, tmp_path, snapshot_of, no_training, damage
):
    run = shutil.copytree(finished_run, tmp_path / "run")
    write_info(run, {**read_info(run), "status": "interrupted"})
    change, fragments = CHECKPOINT_DAMAGES[damage]
    change(run)
    before = snapshot_of(run)
    line = _one_error_line(runner.invoke(app, ["train", "--resume", str(run)]), 2)
    assert "checkpoint.npz" in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert snapshot_of(run) == before


def test_a_diverged_run_keeps_only_finite_parameters_and_says_what_it_kept(runner, app, tiny_run_toml, tmp_path):
    """A learning rate of 1e300 makes the parameters infinite with a finite gradient: nothing finite to keep."""
    out = tmp_path / "r"
    result = runner.invoke(
        app, ["train", "--config", str(tiny_run_toml), "--out", str(out), "--learning-rate", "1e300"]
    )
    line = _one_error_line(result, 1)
    assert "training diverged" in line
    if (out / "params.npz").exists():
        arrays = np.load(out / "params.npz")
        assert all(np.isfinite(arrays[name]).all() for name in arrays.files)
        assert "the last finite parameters" in line
    else:
        assert "the last finite parameters" not in line and "none were kept" in line
    # and a resume refuses a checkpoint that is not finite, or starts from a finite one and says so
    if (out / "checkpoint.npz").exists():
        resumed = runner.invoke(app, ["train", "--resume", str(out)])
        if resumed.exit_code == 2:
            assert "not finite" in resumed.stderr.strip().splitlines()[-1]
        else:
            assert "from its last finite checkpoint" in resumed.output


# ----------------------------------------------------------------- history columns (deliverable 3)
def test_history_columns_name_the_terms_in_the_loss(runner, app, tiny_run_toml, tmp_path, monkeypatch):
    import expfam.experiment.runs.plots

    monkeypatch.setattr(expfam.experiment.runs.plots, "save_run_plots", lambda *args, **kwargs: [])
    out = tmp_path / "r"
    flags = ["--elbo-estimator", "rao_blackwell_elbo", "--loss", "elbo=1"]
    result = runner.invoke(app, ["train", "--config", str(tiny_run_toml), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    rows = read_history(out)
    assert "elbo" in rows[0] and "rao_blackwell_elbo" in rows[0]  # two estimators: each under its own name
    assert rows[0]["elbo"] != rows[0]["rao_blackwell_elbo"]


# ----------------------------------------------------------------- sweeps (deliverable 6)
SWEEP = '[[phases]]\nname = "P"\nruns = [{{ name = "{name}", seed = 1 }}]\n'


def _sweep_file(tmp_path, tiny_run_toml, name="A"):
    base = "".join(
        line.replace("[", "[base.", 1) + "\n" if line.startswith("[") else line + "\n"
        for line in tiny_run_toml.read_text().splitlines()
    )
    path = tmp_path / "s.toml"
    path.write_text(base + SWEEP.format(name=name))
    return path


@pytest.mark.parametrize("name", ["report.md", "plots", "results.csv", "sweep.toml"])
def test_a_run_named_like_a_sweep_file_is_refused_before_any_trial(
    runner, app, tiny_run_toml, tmp_path, no_training, name
):
    sweep = _sweep_file(tmp_path, tiny_run_toml, name)
    line = _one_error_line(runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "out")]), 2)
    assert repr(name) in line and "rename the run" in line
    assert not (tmp_path / "out").exists()


def test_sweep_bad_out_and_devices_are_refused_before_any_trial(runner, app, tiny_run_toml, tmp_path, no_training):
    sweep = _sweep_file(tmp_path, tiny_run_toml)
    line = _one_error_line(
        runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "o"), "--devices", TOO_MANY]), 2
    )
    assert "device(s) visible" in line and not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("not a folder")
    line = _one_error_line(runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "file")]), 2)
    assert "is a file, not a folder" in line
    line = _one_error_line(runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "file" / "sub")]), 2)
    assert "is a file, not a folder" in line


def test_sweep_read_only_out_is_refused_before_any_trial(
    runner, app, tiny_run_toml, tmp_path, no_training, deny_temporary_files
):
    """Permission denied (simulated: the tests may run as root, which ignores modes)."""
    sweep = _sweep_file(tmp_path, tiny_run_toml)
    folder = tmp_path / "read-only"
    folder.mkdir()
    deny_temporary_files(folder)
    line = _one_error_line(runner.invoke(app, ["sweep", str(sweep), "--out", str(folder)]), 2)
    assert "Permission denied" in line and "--out" in line
    assert list(folder.iterdir()) == []


def test_a_failed_trial_ends_the_sweep_with_an_error_line(runner, app, tiny_run_toml, tmp_path, monkeypatch):
    import expfam.experiment.sweeps.run

    def failing(config, run_dir, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(expfam.experiment.sweeps.run, "train_trial", failing)
    sweep = _sweep_file(tmp_path, tiny_run_toml)
    result = runner.invoke(app, ["sweep", str(sweep), "--out", str(tmp_path / "out"), "--no-stack"])
    line = _one_error_line(result, 1)
    assert "1 of 1 trials failed: A" in line and "error.txt" in line


def test_a_diverged_run_resumes_from_its_last_finite_checkpoint_and_says_so(
    runner, app, finished_run, tmp_path, monkeypatch
):
    import expfam.experiment.runs.plots

    monkeypatch.setattr(expfam.experiment.runs.plots, "save_run_plots", lambda *args, **kwargs: [])
    run = shutil.copytree(finished_run, tmp_path / "run")
    (run / "metrics.json").unlink()
    write_info(run, {**read_info(run), "status": "diverged", "diverged": {"step": 3, "term": "elbo", "message": ""}})
    _rewrite_checkpoint(run, step=np.int32(2))  # the checkpoint before the bad step
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert f"resuming diverged run {run} from its last finite checkpoint (step 2); it diverged at step 3" in (
        result.output + result.stderr
    )
    assert read_info(run)["status"] == "completed"
    nan_run = shutil.copytree(finished_run, tmp_path / "nan")
    write_info(nan_run, {**read_info(nan_run), "status": "diverged"})
    _nan_params(nan_run)
    line = _one_error_line(runner.invoke(app, ["train", "--resume", str(nan_run)]), 2)
    assert "checkpoint.npz" in line and "no finite checkpoint" in line
