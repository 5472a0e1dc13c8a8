"""Run-directory I/O (expfam.experiment.runs): atomic writes, refusal of existing runs, round trips."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from expfam.experiment.config import RunConfig, config_from_mapping
from expfam.experiment.runs.atomic import RunDirectoryError, atomic_open
from expfam.experiment.runs.files import (
    flatten_params,
    history_text,
    load_params,
    metrics_equal,
    read_history,
    read_metrics,
    read_run,
    save_params,
    write_config,
    write_history,
    write_metrics,
)
from expfam.experiment.runs.layout import CONFIG_FILE
from expfam.experiment.runs.lock import writable_run_dir


def _params() -> dict:
    rng = np.random.default_rng(0)
    return {
        "prior": {"b_y": rng.normal(size=4), "W_yk": rng.normal(size=(4, 2)), "b_k": rng.normal(size=2)},
        "likelihood": {"a": rng.normal(size=6).astype(np.float32), "blocks": {"xy": rng.normal(size=(6, 4))}},
        "rho_y": np.zeros(4),
    }


def _assert_same_tree(first: dict, second: dict) -> None:
    assert set(first) == set(second)
    for key, value in first.items():
        if isinstance(value, dict):
            _assert_same_tree(value, second[key])
        else:
            assert second[key].dtype == np.asarray(value).dtype
            np.testing.assert_array_equal(second[key], value)


def test_params_round_trip_to_the_same_nested_dict(tmp_path):
    params = _params()
    save_params(tmp_path, params)
    _assert_same_tree(params, load_params(tmp_path))
    with np.load(tmp_path / "params.npz") as archive:
        assert sorted(archive.files) == [
            "likelihood/a",
            "likelihood/blocks/xy",
            "prior/W_yk",
            "prior/b_k",
            "prior/b_y",
            "rho_y",
        ]


def test_params_names_with_a_slash_are_refused():
    with pytest.raises(RunDirectoryError, match="without '/'"):
        flatten_params({"a/b": np.zeros(1)})


def _open_run_dir(path, overwrite=False):
    """Check, lock and (with `overwrite`) clear `path` as a run does, then release it."""
    with writable_run_dir(path, overwrite) as folder:
        return folder


def test_a_run_dir_refuses_a_non_empty_directory_and_names_the_flag(tmp_path):
    run = tmp_path / "run"
    assert _open_run_dir(run) == run and run.is_dir()
    assert _open_run_dir(run) == run  # empty: fine
    (run / CONFIG_FILE).write_text("old")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"run.*already exists.*--overwrite"):
        _open_run_dir(run)
    assert (run / CONFIG_FILE).read_text() == "old"
    _open_run_dir(run, overwrite=True)
    assert not (run / CONFIG_FILE).exists()  # run files removed ...
    assert (run / "notes.txt").read_text() == "mine"  # ... anything else kept


def test_a_run_dir_refuses_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        _open_run_dir(target, overwrite=True)


def test_atomic_open_leaves_the_old_file_on_error_and_no_temporary_files(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as handle:
        handle.write("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["metrics.json"]
    with atomic_open(path, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["metrics.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_config_metrics_and_history_round_trip(tmp_path):
    config = config_from_mapping({"model": {"n_clusters": 7, "block": "xy,xk"}, "train": {"learning_rate": 1.5e-3}})
    write_config(tmp_path, config)
    metrics = {"nmi": 0.5, "r2": math.nan, "active_clusters": 3}
    write_metrics(tmp_path, metrics)
    save_params(tmp_path, _params())
    read_config_, params, read_metrics_ = read_run(tmp_path)
    assert read_config_ == config
    assert metrics_equal(read_metrics_, metrics)
    _assert_same_tree(_params(), params)

    rows = [{"step": 10, "loss": 1.5, "elbo": -2.0}, {"step": 20, "loss": 1.25, "elbo": -1.0, "nmi": 0.3, "r2": 0.9}]
    write_history(tmp_path, rows)
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == "step,loss,elbo,nmi,r2"
    assert read_history(tmp_path) == rows


def test_history_text_writes_exact_floats():
    text = history_text([{"step": 1, "elbo": 0.1 + 0.2}])
    assert text == "step,elbo\n1,0.30000000000000004\n"


def test_read_run_names_what_is_missing(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        read_run(tmp_path / "nowhere")
    write_config(tmp_path, RunConfig())
    with pytest.raises(RunDirectoryError, match=r"params\.npz.*is missing"):
        read_run(tmp_path)
    save_params(tmp_path, _params())
    assert read_metrics(tmp_path) is None
    (tmp_path / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(RunDirectoryError, match="not a readable parameter archive"):
        load_params(tmp_path)
