"""Executors as plugins: choosing one (flags over `[executor]`), refusing bad choices before any work,
the sweep writing returned run directories, and a third-party executor installed in the test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import expfam.experiment.sweeps.run
from cli.sweep import executor_choice
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.layout import INFO_FILE, is_finished
from expfam.experiment.sweeps.remote import write_returned_files
from expfam.experiment.sweeps.spec import parse_sweep

PHASES = '[[phases]]\nname = "P"\ngrid = {lr = [3e-3, 1e-2]}\n'


def _fake_trial(config, run_dir):
    return {"nmi": 0.5 + config.train.learning_rate, "r2": 0.99, "purity": 0.6, "recon": 4.0}


def test_flags_win_over_the_sweep_files_executor_table(tmp_path):
    spec = parse_sweep(
        {
            "executor": {"name": "dask", "scheduler": "tcp://a:1", "tls_cert": "c.pem"},
            "phases": [{"name": "P", "runs": [{}]}],
        },
        source=str(tmp_path / "s.toml"),
    )
    assert executor_choice(spec, None, {}) == (
        "dask",
        {"scheduler": "tcp://a:1", "tls_cert": str(tmp_path / "c.pem")},  # relative to the sweep file
    )
    assert executor_choice(spec, None, {"scheduler": "tcp://b:2"})[1]["scheduler"] == "tcp://b:2"
    assert executor_choice(spec, "local", {}) == ("local", {})  # the file's options are the dask executor's
    assert executor_choice(parse_sweep({"phases": [{"name": "P", "runs": [{}]}]}), None, {}) == ("local", {})


def test_bad_executor_choices_are_refused_before_anything_is_written(runner, app, tmp_path, assert_user_error):
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text(PHASES)
    out = tmp_path / "out"
    base = ["sweep", str(sweep_file), "--out", str(out)]
    assert_user_error(runner.invoke(app, [*base, "--executor", "ray"]), "unknown executor 'ray'", "dask, local")
    assert_user_error(runner.invoke(app, [*base, "--scheduler", "tcp://h:1"]), "'local' takes no option 'scheduler'")
    if "distributed" in sys.modules or _importable("distributed"):
        tls = [*base, "--executor", "dask", "--scheduler", "tls://h:1"]
        assert_user_error(runner.invoke(app, tls), "uses TLS but no certificates", "--tls-cert")
    sweep_file.write_text('[executor]\nname = "local"\nscheduler = 3\n' + PHASES)
    assert_user_error(runner.invoke(app, base), "'local' takes no option 'scheduler'")
    assert not out.exists()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_without_the_extra_the_dask_executor_says_what_to_install(
    runner, app, tmp_path, monkeypatch, assert_user_error
):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without expfam[dask] imports
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text(PHASES)
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--executor", "dask"])
    assert_user_error(result, "pip install 'expfam[dask]'")
    assert not out.exists()


def test_returned_files_replace_an_earlier_attempt_at_once(tmp_path):
    run_dir = tmp_path / "H1"
    run_dir.mkdir()
    (run_dir / "checkpoint.npz").write_bytes(b"old")
    (run_dir / "error.txt").write_text("an earlier failure")
    write_returned_files(run_dir, {INFO_FILE: b'{"status": "completed"}', "metrics.json": b"{}"})
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.json", INFO_FILE] and is_finished(run_dir)
    assert [p.name for p in tmp_path.iterdir()] == ["H1"]  # no staging folder left
    with pytest.raises(RunDirectoryError, match="not a plain file name"):
        write_returned_files(run_dir, {"../escape.txt": b"x"})
    assert is_finished(run_dir) and not (tmp_path / "escape.txt").exists()


# ----------------------------------------------------------------- a third-party executor, installed
PLUGIN = '''\
"""An executor that trains every unit here, one after another, through the path of a remote executor."""

from expfam.errors import ConfigurationError
from expfam.experiment.sweeps.remote import attempt_elsewhere
from expfam.hookspecs import hookimpl


class Inline:
    name = "inline"
    description = "every unit in this process, returning its files"
    remote = True

    def check(self, options):
        if set(options) - {"label"}:
            raise ConfigurationError(f"inline takes only 'label', got {sorted(options)}")

    def run(self, units, *, jobs, options, announce, finished):
        for index, unit in enumerate(units):
            announce(index, "training")
            finished(index, attempt_elsewhere(unit, worker=options.get("label", "inline")))


@hookimpl
def expfam_executors():
    return [Inline()]
'''

SWEEP = """\
prefix = "H"

[executor]
name = "inline"
label = "here"

[base.model]  # the sizes of tests/cli/test_sweep_dask.py: one compiled program serves both files
n_latent = 4
n_clusters = 3

[base.train]
n_steps = 150
log_every = 50
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64
kl_warmup_steps = 20
conj_warmup_steps = 10
lr_warmup_steps = 10

[base.evaluate]
n_r2_samples = 200
n_iwae_samples = 5
batch_size = 200

[[phases]]
name = "P"
grid = {lr = [3e-3, 1e-2]}
"""


def _install(site) -> None:
    """Install the plugin as a distribution: its module and a `.dist-info` with its entry point."""
    (site / "inline_executor.py").write_text(PLUGIN)
    info = site / "inline_executor-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inline-executor\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[expfam]\ninline = inline_executor\n")


@pytest.mark.slow
def test_an_installed_third_party_executor_runs_a_sweep(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env["PYTHONWARNINGS"] = "ignore"
    listing = subprocess.run(
        [sys.executable, "-m", "expfam", "plugins"], capture_output=True, text=True, env=env, check=True
    )
    assert "inline" in listing.stdout and "inline-executor (inline)" in listing.stdout
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text(SWEEP)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "expfam", "sweep", str(sweep_file), "--out", str(out), "--no-run-plots"]
    command += ["--no-stack"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "H1 done on worker here in" in result.stdout and "H2 done on worker here in" in result.stdout
    for name in ("H1", "H2"):  # written by the sweep from the returned bytes, finished
        assert is_finished(out / name) and (out / name / "params.npz").is_file()
    assert "trials per worker: here 2" in result.stdout


def test_the_python_api_takes_an_executor_object(tmp_path, monkeypatch):
    monkeypatch.setattr(expfam.experiment.sweeps.run, "train_trial", _fake_trial)
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(PLUGIN), namespace)  # the plugin's class, used directly
    spec = parse_sweep({"prefix": "H", "phases": [{"name": "P", "grid": {"lr": [3e-3, 1e-2]}}]})
    inline = namespace["Inline"]()
    out = tmp_path / "out"
    results = expfam.experiment.sweeps.run.run_sweep(
        spec, out, executor=inline, executor_options={"label": "x"}, plots=False, stack=1
    )
    assert [r.status for r in results] == ["finished", "finished"]
    assert all(is_finished(out / name) for name in ("H1", "H2"))


def test_the_default_stacks_only_where_it_pays():
    """On a CPU a sweep that names no stack trains one trial at a time; over devices or on a cluster it stacks."""
    import jax

    from expfam.experiment.sweeps.run import default_stack
    from expfam.plugins import get_registry

    local, dask = get_registry().executor("local"), get_registry().executor("dask")
    assert default_stack(local) == (1 if jax.default_backend() == "cpu" else None)
    assert default_stack(local, devices=2) is None and default_stack(dask) is None


def test_a_group_larger_than_every_workers_memory_is_refused_before_submission(tmp_path, runner, app):
    distributed = pytest.importorskip("distributed", reason="the dask executor needs expfam[dask]")
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('prefix = "H"\n[base.model]\nn_latent = 64\nn_clusters = 20\n' + PHASES)
    # one in-process worker whose memory limit (1 MiB) is far below the group's estimate (the test's own scheduler)
    with (
        distributed.LocalCluster(n_workers=1, processes=False, memory_limit="1MiB", dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        address = cluster.scheduler_address
        out = tmp_path / "out"
        args = ["sweep", str(sweep_file), "--out", str(out), "--executor", "dask", "--scheduler", address]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("error: the stacked group H1–H2 needs at least"), line
        assert "largest worker memory limit of the cluster (0.000977 GiB)" in line, line
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0  # nothing submitted
    assert not any(out.glob("H*/run.json"))
