"""``expfam train`` and ``expfam evaluate``.

The real training run happens once per test run, in a separate process (the installed
``expfam`` script, or ``python -m cli.app``), with no TTY: `small_run_by_cli`
(tests/conftest.py), the same configuration and seed as tests/expfam/test_pipeline.py's
in-process `small_run`, which compares the two. CliRunner then re-evaluates that run
in-process and checks the flag handling of ``train`` with the pipeline call replaced (no
second compilation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cli.train
from expfam.experiment.config import config_to_toml, load_config
from expfam.experiment.runs.files import metrics_equal, read_metrics
from expfam.experiment.runs.layout import read_info


def _metrics_line(stdout: str) -> dict:
    [line] = [line for line in stdout.splitlines() if line.startswith("metrics: ")]
    return json.loads(line.removeprefix("metrics: "))


@pytest.mark.slow
def test_train_prints_the_seed_columns_and_the_run_directory(small_run_by_cli):
    out, result = small_run_by_cli
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "| Run | n_latent | n_clusters | lr | kl_warmup | conj_weight | entropy_w | post_entropy_w | n_steps "
        "| NMI | Active | R² | Purity | Recon |"
    )
    assert lines[2].startswith("| small | 8 | 10 | 3e-3 | 200 | 0.1 | 1.0 | 1.0 | 300 | 0.")
    assert lines[2].count("|") == 15 and lines[2].count("%") == 1
    assert lines[-1] == f"run directory: {out}"
    assert metrics_equal(_metrics_line(result.stdout), read_metrics(out))
    assert read_info(out)["status"] == "completed" and read_info(out)["x64"] is True
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_reports_progress_on_stderr_without_a_tty(small_run_by_cli):
    _, result = small_run_by_cli
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split()[3] for line in progress] == ["100/300", "200/300", "300/300"], result.stderr
    assert "ETA ?" in progress[0] and "ETA 0s" in progress[-1]
    for fragment in ("ELBO -", "NMI 0.", "R² "):
        assert fragment in progress[-1]
    assert "\r" not in result.stderr
    assert result.stderr.index("data: digits") < result.stderr.index(progress[0])
    assert result.stderr.index(progress[-1]) < result.stderr.index("evaluating on the test split")


@pytest.mark.slow
def test_evaluate_recomputes_the_metrics_train_printed(small_run_by_cli, runner, app):
    out, trained = small_run_by_cli
    result = runner.invoke(app, ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    assert metrics_equal(_metrics_line(result.stdout), _metrics_line(trained.stdout))
    assert result.stdout.splitlines()[2] == trained.stdout.splitlines()[2]
    assert "metrics.json: identical" in result.stderr


@pytest.fixture()
def captured(monkeypatch):
    """Replace the pipeline call of ``expfam train`` and record its arguments."""
    calls: list[tuple] = []

    def fake_train_run(config, out, **options):
        calls.append((config, out, options))
        return {"nmi": 0.5, "r2": 0.9, "purity": 0.75, "recon": 3.0}

    monkeypatch.setattr(cli.train, "train_run", fake_train_run)
    return calls


@pytest.mark.slow
def test_train_config_toml_round_trip_gives_the_same_config(small_run_by_cli, runner, app, captured, tmp_path):
    out, _ = small_run_by_cli
    result = runner.invoke(app, ["train", "--config", str(out / "config.toml"), "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    [(config, again, _)] = captured
    assert config == load_config(out / "config.toml")
    assert config_to_toml(config) == (out / "config.toml").read_text()
    assert again == tmp_path / "again"


def test_flags_override_the_config_file_and_defaults_fill_the_rest(runner, app, captured, tiny_toml):
    flags = ["--seed", "7", "--block", "xy,xk", "--learning-rate", "1e-3", "--observable", "poisson", "--overwrite"]
    result = runner.invoke(app, ["train", "--config", str(tiny_toml), *flags])
    assert result.exit_code == 0, result.output
    [(config, out, options)] = captured
    assert (config.train.seed, config.model.block, config.train.learning_rate) == (7, "xy,xk", 1e-3)
    assert config.model.observable == "poisson"
    assert config.evaluate.n_r2_samples == 500  # from the file
    assert config.train.n_steps == load_config(tiny_toml).train.n_steps  # the default
    assert options["overwrite"] is True and callable(options["progress"])
    assert out.parent == Path("runs") and out.name.startswith("xy+xk-")
    assert result.stdout.splitlines()[2].startswith(f"| {out.name} | 128 | 20 | 1e-3 | ")
    assert result.stdout.splitlines()[-1] == f"run directory: {out}"


def test_evaluate_and_compare_print_json_with_json(tiny_digits_run, runner, app):
    out = tiny_digits_run["out"]  # a run whose NMI is above 0, so the ratio of NMIs is defined
    evaluated = runner.invoke(app, ["evaluate", str(out), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    document = json.loads(evaluated.stdout)
    assert document["stored"] == "identical" and document["differs_in"] == []
    assert metrics_equal(document["metrics"], read_metrics(out))
    assert document["summary"]["Run"] == out.name
    compared = runner.invoke(app, ["compare", str(out), str(out), "--json"])
    assert compared.exit_code == 0, compared.output
    runs = json.loads(compared.stdout)["runs"]
    assert [run["run_dir"] for run in runs] == [str(out), str(out)]
    assert runs[1]["nmi_ratio"] == pytest.approx(1.0)


def test_block_set_defaults_apply_under_the_file_and_the_flags(runner, app, captured, tmp_path, monkeypatch):
    """``BLOCK_DEFAULTS[block]`` fills the keys that neither the file nor a flag sets; other blocks keep RunConfig's."""
    from expfam.experiment import config as config_module

    monkeypatch.setitem(config_module.BLOCK_DEFAULTS, "full", {"model": {"n_latent": 12}, "train": {"n_steps": 345}})
    assert runner.invoke(app, ["train", "--block", "full", "--out", str(tmp_path / "a")]).exit_code == 0
    assert (
        runner.invoke(app, ["train", "--block", "full", "--n-steps", "9", "--out", str(tmp_path / "b")]).exit_code == 0
    )
    file = tmp_path / "full.toml"
    file.write_text('[model]\nblock = "full"\n[train]\nn_steps = 77\n')
    assert runner.invoke(app, ["train", "--config", str(file), "--out", str(tmp_path / "c")]).exit_code == 0
    assert runner.invoke(app, ["train", "--block", "xy,xk", "--out", str(tmp_path / "d")]).exit_code == 0
    (a, _, _), (b, _, _), (c, _, _), (d, _, _) = captured
    assert (a.model.n_latent, a.train.n_steps) == (12, 345)
    assert (b.model.n_latent, b.train.n_steps) == (12, 9)
    assert (c.model.n_latent, c.train.n_steps) == (12, 77)
    assert (d.model.n_latent, d.train.n_steps) == (
        config_module.RunConfig().model.n_latent,
        config_module.RunConfig().train.n_steps,
    )


def test_collapsed_run_says_so_in_its_summary(runner, app, monkeypatch, tmp_path):
    monkeypatch.setattr(
        cli.train, "train_run", lambda config, out, **options: {"nmi": 0.3, "active_clusters": 4, "r2": 0.9}
    )
    result = runner.invoke(app, ["train", "--n-clusters", "20", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "| 0.30 | 4 |" in lines[2]
    assert lines[3].startswith("warning: cluster collapse: only 4 of 20 clusters are active")
