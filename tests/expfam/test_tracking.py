"""Tracking (expfam.tracker, expfam.experiment.tracking, expfam.experiment.sweeps.tracked, expfam.trackers): real runs.

Checked: the `[track]` settings and their errors; a tracker that raises at every call leaves the
run exactly as an untracked run of the same seed, with one warning; MLflow (slow, needs
`expfam[mlflow]`): an interrupted and resumed run and a stacked sweep with a diverging trial in a
local store, read back with MLflow's client; a real `mlflow server` on 127.0.0.1 read back
through its REST API, then stopped mid-run. Every run here has one shape, so one compilation
serves the module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import create_app
from expfam.errors import ConfigurationError, TrackingWarning, UnknownNameError
from expfam.experiment.config import config_from_mapping, flatten_config, load_config
from expfam.experiment.runs.files import read_config, read_history, read_metrics
from expfam.experiment.runs.solo import resume_run, train_run
from expfam.experiment.tracking import TrackSettings, make_trackers, read_track_settings, track_settings
from expfam.plugins import get_registry
from expfam.testing import check_tracker

#: One tiny shape for every run of the module (6 steps, a row every 2, a checkpoint every chunk).
TINY: dict[str, dict[str, Any]] = {
    "model": {"n_latent": 2, "n_clusters": 3},
    "train": {
        "n_steps": 6,
        "log_every": 2,
        "batch_size": 16,
        "n_mc_samples": 2,
        "n_conj_samples": 16,
        "cluster_init": "random",
        "lr_warmup_steps": 0,
        "kl_warmup_steps": 0,
        "conj_warmup_steps": 0,
        "checkpoint_every": 1,
    },
    "evaluate": {"n_r2_samples": 50, "n_iwae_samples": 2, "n_elbo_samples": 2, "batch_size": 200},
}
TIMINGS = ("train_seconds", "total_seconds")


def tiny_config(**train: Any):
    return config_from_mapping({**TINY, "train": {**TINY["train"], **train}})


def contents(run_dir: Path) -> dict[str, Any]:
    """Every file's bytes; an `.npz` archive's members' bytes (the zip container dates its entries);
    `run.json` without its timings."""
    found: dict[str, Any] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        name = path.relative_to(run_dir).as_posix()
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                found[name] = {member: archive.read(member) for member in archive.namelist()}
        elif name == "run.json":
            found[name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS}
        else:
            found[name] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def untracked(tmp_path_factory):
    out = tmp_path_factory.mktemp("untracked") / "run"
    train_run(tiny_config(), out, plots=False)
    return out


class Raising:
    """A tracker with a bug: every call raises."""

    name = "raising"

    def __init__(self, *, uri=None, base=None, experiment=None):
        self.calls = 0

    def _fail(self, *args):
        self.calls += 1
        raise RuntimeError("tracker bug")

    start = log_row = log_metrics = log_artifacts = end = _fail


# ----------------------------------------------------------------- settings
def test_track_settings_are_read_from_a_file_and_flags_override_them(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nn_latent = 3\n\n[track]\ntrackers = "mlflow"\nuri = "sqlite:///x.db"\n')
    assert read_track_settings(path) == TrackSettings(("mlflow",), "sqlite:///x.db", None)
    assert load_config(path).model.n_latent == 3  # the run's configuration skips [track]
    assert read_track_settings(path).over(["jsonl"], "http://h") == TrackSettings(("jsonl",), "http://h", None)
    assert read_track_settings(None) == TrackSettings()
    with pytest.raises(ConfigurationError, match="unknown key 'url' in \\[track\\]; allowed: trackers, uri"):
        track_settings({"url": "x"})
    with pytest.raises(ConfigurationError, match="trackers must be a name or a list of names"):
        track_settings({"trackers": [1]})
    with pytest.raises(UnknownNameError, match=r"unknown tracker 'nope'; registered: .*mlflow"):
        make_trackers(TrackSettings(("nope",)))


def test_track_mlflow_without_mlflow_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    out = tmp_path / "run"
    result = CliRunner().invoke(create_app(get_registry()), ["train", "--track", "mlflow", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: --track mlflow needs MLflow, which is not installed: pip install 'expfam[mlflow]'"
    ]
    assert not out.exists()  # refused before any work
    result = CliRunner().invoke(create_app(get_registry()), ["train", "--tracking-uri", "http://h", "--out", str(out)])
    assert result.exit_code == 2 and "--tracking-uri needs a tracker" in result.stderr
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[track]\ntrackers = ["mlflow"]\n\n[[phases]]\nname = "P"\ngrid = { seed = [0, 1] }\n')
    result = CliRunner().invoke(create_app(get_registry()), ["sweep", str(sweep), "--out", str(out)])
    assert result.exit_code == 2 and "pip install 'expfam[mlflow]'" in result.stderr
    assert not out.exists()  # no trial started


class Scribbler:
    """A tracker that keeps its notes inside the run directory: what check_tracker refuses."""

    name = "scribbler"

    def __init__(self, *, uri=None, base=None, experiment=None):
        self.run_dir = None

    def start(self, run):
        self.run_dir = run.run_dir

    def log_row(self, step, row):
        if self.run_dir is not None:
            (self.run_dir / "tracker-notes.txt").write_text(f"last step {step}\n")

    def log_metrics(self, metrics):
        pass

    def log_artifacts(self, files):
        pass

    def end(self, end):
        pass


def test_the_kit_refuses_a_tracker_that_writes_into_a_run_directory_or_raises(tmp_path):
    with pytest.raises(AssertionError, match=r"changed the run directory .*solo: tracker-notes.txt; write elsewhere"):
        check_tracker(Scribbler, tmp_path / "scribbler")
    with pytest.raises(AssertionError, match=r"tracker 'raising': raised during a run at event start\(solo\)"):
        check_tracker(Raising, tmp_path / "raising")


# ----------------------------------------------------------------- the run directory is the source of truth
@pytest.mark.slow  # it trains two runs (the default tier keeps to the checks above)
def test_a_tracker_raising_at_every_call_changes_nothing_and_warns_once(untracked, tmp_path):
    tracker = Raising()
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_run(tiny_config(), out, plots=False, trackers=[tracker])
    tracking = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(tracking) == 1 and "tracker 'raising' failed in start (RuntimeError: tracker bug)" in str(
        tracking[0].message
    )
    assert tracker.calls == 1  # dropped after its first failure
    assert contents(out) == contents(untracked)


# ----------------------------------------------------------------- MLflow
def _mlflow() -> Any:
    return pytest.importorskip("mlflow", reason="the MLflow tracker needs the expfam[mlflow] extra")


def _params_equal_config(params: dict[str, str], run_dir: Path) -> None:
    expected = flatten_config(read_config(run_dir))
    assert set(params) == set(expected)
    for key, text in params.items():
        value = tomllib.loads(f"v = {text}")["v"]
        wanted = expected[key]
        wanted = wanted.to_dict() if hasattr(wanted, "to_dict") else wanted
        assert value == (list(wanted) if isinstance(wanted, tuple) else wanted), key


def _histories(get_history, keys, run_dir: Path) -> None:
    """The run's metrics `history/<column>` are `history.csv`'s columns, each equal to it row for row."""
    rows = read_history(run_dir)
    columns = sorted({column for row in rows for column in row} - {"step"})
    assert sorted(key for key in keys if key.startswith("history/")) == [f"history/{c}" for c in columns]
    for column in columns:
        points = sorted((point.step, point.value) for point in get_history(f"history/{column}"))
        assert points == [(row["step"], row[column]) for row in rows], column


@pytest.mark.slow
def test_an_interrupted_run_and_its_resumption_are_one_mlflow_run(untracked, tmp_path, monkeypatch):
    _mlflow()
    from mlflow.tracking import MlflowClient

    from expfam.trackers.mlflow_tracker import MlflowTracker

    out = tmp_path / "runs" / "run"

    def stop_at_4(step, n_steps, row):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(), out, plots=False, progress=stop_at_4, trackers=[MlflowTracker(base=out.parent)])
    tracker = MlflowTracker(base=out.parent)
    resume_run(out, plots=False, trackers=[tracker])
    assert contents(out) == contents(untracked)
    assert not any(p.name.startswith("mlflow") or p.name == "mlartifacts" for p in out.iterdir())
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("expfam").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["expfam.status"] == "completed"
    assert run.data.tags["expfam.run_dir"] == str(out.resolve()) and run.data.tags["expfam.blocks"] == "xy"
    _params_equal_config(run.data.params, out)
    _histories(lambda key: client.get_metric_history(run.info.run_id, key), run.data.metrics, out)
    final = {key: value for key, value in run.data.metrics.items() if not key.startswith("history/")}
    assert final == read_metrics(out)
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "history.csv", "metrics.json", "model.json", "params.npz", "run.json"} <= artefacts


@pytest.mark.slow
def test_the_mlflow_tracker_passes_the_kit_and_continues_the_resumed_run(tmp_path):
    _mlflow()
    from mlflow.tracking import MlflowClient

    from expfam.testing.tracker_checks import RESUMED_ROW, ROWS
    from expfam.trackers.mlflow_tracker import MlflowTracker

    assert check_tracker(MlflowTracker, tmp_path) == {"runs": 6, "events": 29}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("expfam-check-tracker").experiment_id])
    solo = [r for r in runs if r.info.run_name == "solo"]
    assert len(solo) == 1 and len(runs) == 5  # the resumed run went on in the interrupted one
    history = client.get_metric_history(solo[0].info.run_id, "history/loss")
    assert sorted((p.step, p.value) for p in history) == [(r["step"], r["loss"]) for r in (*ROWS, RESUMED_ROW)]
    assert solo[0].info.status == "FINISHED"


SWEEP = {
    "title": "tracked",
    "prefix": "S",
    "base": TINY,
    "phases": [{"name": "P", "runs": [{}, {"seed": 1}, {"learning_rate": 1e300, "note": "diverges"}]}],
}


@pytest.mark.slow
def test_a_stacked_sweep_is_a_parent_run_with_one_child_per_trial(tmp_path):
    _mlflow()
    from mlflow.tracking import MlflowClient

    from expfam.experiment.sweeps.run import run_sweep
    from expfam.experiment.sweeps.spec import parse_sweep
    from expfam.trackers.mlflow_tracker import MlflowTracker

    out = tmp_path / "sweeps" / "small"
    results = run_sweep(
        parse_sweep(SWEEP),
        out,
        plots=False,
        run_plots=False,
        stack=None,  # stacked on a CPU too (the default there trains one trial at a time)
        vectorize="map",
        trackers=[MlflowTracker(base=out.parent)],
    )
    assert [r.status for r in results] == ["finished", "finished", "failed"]
    client = MlflowClient(f"sqlite:///{out.parent / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("expfam").experiment_id])
    [parent] = [r for r in runs if r.data.tags["expfam.kind"] == "sweep"]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["S1", "S2", "S3"] and len(runs) == 4
    assert parent.info.status == "FINISHED" and {"report.md", "results.csv"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    for name, run in children.items():
        run_dir = out / name
        assert run.data.tags["expfam.group"] == "S1+S2+S3" and run.data.tags["expfam.phase"] == "P"
        _params_equal_config(run.data.params, run_dir)
        _histories(lambda key, run=run: client.get_metric_history(run.info.run_id, key), run.data.metrics, run_dir)
        assert "run.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in ("S1", "S2"):
        final = {k: v for k, v in children[name].data.metrics.items() if not k.startswith("history/")}
        assert children[name].info.status == "FINISHED" and final == read_metrics(out / name)
    diverged = children["S3"]
    info = json.loads((out / "S3" / "run.json").read_text())["diverged"]
    assert diverged.info.status == "FAILED" and diverged.data.tags["expfam.status"] == "diverged"
    assert not read_history(out / "S3") and not diverged.data.metrics  # it diverged in its first chunk
    assert diverged.data.tags["expfam.diverged_step"] == str(info["step"])
    assert diverged.data.tags["expfam.diverged_term"] == info["term"]


# ----------------------------------------------------------------- a real server over HTTP
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(base: str, path: str, **query: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}", timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture()
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 in its own process group, stopped by that id, pass or fail."""
    _mlflow()
    port = _free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--workers", "1"]
    command += ["--artifacts-destination", str(tmp_path / "server-artifacts")]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield base, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


@pytest.mark.slow
def test_a_run_tracked_over_http_then_a_server_that_dies_mid_run(mlflow_server, untracked, tmp_path, monkeypatch):
    from expfam.trackers.mlflow_tracker import HTTP_DEFAULTS, MlflowTracker

    for key, value in HTTP_DEFAULTS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    base, server = mlflow_server
    out = tmp_path / "over-http"
    train_run(tiny_config(), out, plots=False, trackers=[MlflowTracker(uri=base)])
    experiment = _get(base, "experiments/get-by-name", experiment_name="expfam")["experiment"]["experiment_id"]
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        [found] = json.loads(response.read())["runs"]
    run_id = found["info"]["run_id"]
    assert found["info"]["status"] == "FINISHED"
    _params_equal_config({p["key"]: p["value"] for p in found["data"]["params"]}, out)
    final = {m["key"]: m["value"] for m in found["data"]["metrics"] if not m["key"].startswith("history/")}
    assert final == read_metrics(out)

    class Point:
        def __init__(self, record):
            self.step, self.value = int(record["step"]), record["value"]

    def history(key):
        return [Point(m) for m in _get(base, "metrics/get-history", run_id=run_id, metric_key=key)["metrics"]]

    _histories(history, [m["key"] for m in found["data"]["metrics"]], out)
    listed = {f["path"] for f in _get(base, "artifacts/list", run_id=run_id)["files"]}
    assert {"config.toml", "history.csv", "metrics.json", "params.npz"} <= listed
    assert contents(out) == contents(untracked)

    def stop_the_server_at_2(step, n_steps, row):
        if step == 2:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)

    out = tmp_path / "server-died"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_run(tiny_config(), out, plots=False, progress=stop_the_server_at_2, trackers=[MlflowTracker(uri=base)])
    tracking = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(tracking) == 1 and "tracker 'mlflow' failed in log_row" in str(tracking[0].message)
    assert contents(out) == contents(untracked)
