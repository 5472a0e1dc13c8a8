"""load_run, shape checks, random streams, unlabelled data, checkpoints and resume, on tiny digits runs.

The finished run they read is `tiny_digits_run` (tests/conftest.py), trained once per test run.
"""

from __future__ import annotations

import os
import shutil
import signal

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import expfam
from expfam.experiment import load_run
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.checkpoints import checkpoint_step
from expfam.experiment.runs.files import load_params, read_history, read_metrics
from expfam.experiment.runs.layout import read_info
from expfam.experiment.runs.solo import resume_run, train_run
from expfam.experiment.train.streams import STREAMS, stream_key


@pytest.fixture()
def tiny_config(tiny_digits_config):
    """The tiny digits run's configuration (tests/conftest.py), with sections replaced."""
    return tiny_digits_config


@pytest.fixture()
def trained(tiny_digits_run):
    """`(run directory, metrics)` of the tiny digits run, trained once per test run (read-only)."""
    return tiny_digits_run["out"], tiny_digits_run["metrics"]


# ----------------------------------------------------------------- load_run
def test_load_run_rebuilds_the_model_without_the_data(trained, monkeypatch):
    out = trained[0]
    import expfam.data.dataset as dataset
    import expfam.experiment.prepare as prepare

    def no_data(*args, **kwargs):
        raise AssertionError("load_run must not read the training data")

    monkeypatch.setattr(dataset, "load_dataset", no_data)
    monkeypatch.setattr(prepare, "load_dataset", no_data)
    run = load_run(out)
    model, params, config = run
    assert config.model.n_latent == 4 and model.n_clusters == 5 and run.image_shape == (8, 8)
    saved = load_params(out)
    for name in ("a",):
        np.testing.assert_array_equal(np.asarray(params["likelihood"][name]), saved["likelihood"][name])
    x = load_digits().data
    responsibilities = run.responsibilities(x[:50])
    assert responsibilities.shape == (50, 5)
    np.testing.assert_allclose(responsibilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(run.assign(x[:50]), responsibilities.argmax(axis=1))
    assert run.reconstruct(x[:3]).shape == (3, 64)
    samples, clusters = run.sample(7, seed=1)
    assert samples.shape == (7, 64) and clusters.shape == (7,)
    assert samples.min() >= 0 and samples.max() <= 16


def test_one_observation_gives_one_cluster_in_any_layout(trained):
    run = load_run(trained[0])
    x = load_digits().data[:4]
    batch = run.assign(x)
    assert run.assign(x[2]).shape == () and int(run.assign(x[2])) == batch[2]
    assert int(run.assign(x[2].reshape(8, 8))) == batch[2]
    assert np.array_equal(run.assign(x.reshape(4, 8, 8)), batch)


def test_wrong_shapes_and_values_are_refused(trained):
    run = load_run(trained[0])
    with pytest.raises(expfam.ShapeError, match=r"shape \(3, 10\).*\(B, 64\) or \(B, 8, 8\)"):
        run.assign(np.zeros((3, 10)))
    with pytest.raises(expfam.SupportError, match="outside the support"):
        run.assign(np.full((2, 64), 17.0))


def test_a_run_without_model_json_says_how_to_load_it(trained, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    for name in ("config.toml", "params.npz", "run.json"):
        (out / name).write_bytes((trained[0] / name).read_bytes())
    with pytest.raises(RunDirectoryError, match=r"model\.json.*prepare_run"):
        load_run(out)


def test_import_expfam_does_not_load_the_experiment_machinery():
    import subprocess
    import sys

    code = "import sys, expfam; assert not any(m.startswith('expfam.experiment') for m in sys.modules); print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_load_run_is_served_by_the_experiment_package_not_by_expfam():
    """`expfam` serves no floor-2 name; `expfam.experiment` serves `load_run` on first use, and only then imports it."""
    import subprocess
    import sys

    import expfam.experiment
    from expfam.experiment.runs import trained

    assert expfam.experiment.load_run is trained.load_run and expfam.experiment.TrainedRun is trained.TrainedRun
    for name in ("load_run", "TrainedRun"):
        with pytest.raises(AttributeError, match=f"from expfam.experiment import {name}"):
            getattr(expfam, name)
    code = (
        "import sys, expfam.experiment; assert 'expfam.experiment.runs' not in sys.modules; "
        "expfam.experiment.load_run; assert 'expfam.experiment.runs.trained' in sys.modules; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


# ----------------------------------------------------------------- random streams
def test_streams_never_collide_across_seeds_streams_and_steps():
    seen = {}
    for seed in range(12):
        for name in STREAMS:
            stream = stream_key(seed, name)
            candidates = {(seed, name, None): stream}
            if name in ("train", "data"):
                candidates.update({(seed, name, t): jax.random.fold_in(stream, t) for t in range(4)})
            for label, key in candidates.items():
                data = tuple(np.asarray(jax.random.key_data(key)).tolist())
                assert data not in seen, f"{label} collides with {seen[data]}"
                seen[data] = label


def test_the_old_collision_is_gone():
    # Before: seed 0 trained from PRNGKey(0 + 1), which is seed 1's root.
    first_training_key = jax.random.fold_in(stream_key(0, "train"), 0)
    assert not np.array_equal(jax.random.key_data(first_training_key), jax.random.key_data(stream_key(1, "init")))
    assert not np.array_equal(jax.random.key_data(stream_key(0, "train")), jax.random.key_data(jax.random.key(1)))


# ----------------------------------------------------------------- checkpoints and resume
def _interrupt_at(step_to_stop, how="ctrl-c"):
    def progress(step, n_steps, row):
        if step == step_to_stop:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_resume_equals_an_uninterrupted_run_to_the_last_bit(trained, tiny_config, tmp_path, how):
    reference, reference_metrics = trained
    out = tmp_path / "interrupted"
    progress = _interrupt_at(20, how)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(), out, plots=False, progress=progress)
    info = read_info(out)
    assert info["status"] == "interrupted"
    assert checkpoint_step(out) == 10  # the state before the chunk whose report was interrupted
    assert not (out / "metrics.json").exists()
    metrics = resume_run(out, plots=False)
    assert read_info(out)["status"] == "completed"
    assert metrics == reference_metrics
    assert read_metrics(out) == read_metrics(reference)
    resumed, straight = load_params(out), load_params(reference)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert read_history(out) == read_history(reference)


def test_resume_refuses_a_completed_run(trained, tmp_path):
    run = shutil.copytree(trained[0], tmp_path / "run")  # resume takes the run's lock: not on the shared run
    with pytest.raises(RunDirectoryError, match="has completed"):
        resume_run(run)


# ----------------------------------------------------------------- unlabelled data
def test_an_unlabelled_npz_trains_and_reports_label_free_metrics(tiny_config, tmp_path):
    x = load_digits().data
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x_train=x[:1400], x_test=x[1400:])
    metrics = train_run(
        tiny_config(data={"dataset": "npz", "data": str(path)}, train={"n_steps": 20}), tmp_path / "run", plots=False
    )
    assert {"elbo", "iwae", "r2", "recon", "active_clusters"} <= set(metrics)
    assert not {"nmi", "purity", "accuracy", "ari"} & set(metrics)
    assert all("nmi" not in row for row in read_history(tmp_path / "run"))
    assert "no labels" in read_info(tmp_path / "run")["data"]
