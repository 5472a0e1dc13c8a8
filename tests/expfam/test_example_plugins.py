"""The example package examples/third_party_plugins: a family, a block, a loss term and a dataset, trained by ``expfam train``.

In process, the plugin module is registered with ``build_registry(extra_plugins=...)``
and the CLI app is built over that registry; the slow test runs the ``expfam`` script over the
package pip-installed into a folder (`example_plugins_site`, tests/conftest.py, once per test
run), which finds it through its entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import create_app
from expfam.experiment import load_run
from expfam.experiment.runs.files import read_config, read_history
from expfam.plugins import build_registry
from expfam.testing import check_family, check_tracker
from expfam.testing.family_checks import check_initialize

# The README's test line leaves the example plugin packages to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "third_party_plugins"

RUN_TOML = """\
[model]
n_latent = 3
n_clusters = 4
n_trials = 4

[model.block_options.xy_scaled]
init_scale = 0.5

[data.options]
n_images = 200
side = 4

[train]
n_steps = 30
log_every = 15
batch_size = 32
n_mc_samples = 2
n_conj_samples = 64
kl_warmup_steps = 10
conj_warmup_steps = 5
lr_warmup_steps = 5

[evaluate]
n_r2_samples = 200
n_elbo_samples = 2
n_iwae_samples = 4
batch_size = 100
"""
FLAGS = ["--observable", "geometric", "--block", "xy_scaled", "--dataset", "stripes", "--loss", "l2=0.001"]


@pytest.fixture(scope="module")
def plugin():
    sys.path.insert(0, str(PACKAGE / "src"))
    try:
        from expfam_extras import plugin as module
    finally:
        sys.path.remove(str(PACKAGE / "src"))
    return module


@pytest.fixture(scope="module")
def registry(plugin):
    return build_registry([plugin])


@pytest.fixture()
def run_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(RUN_TOML)
    return path


def test_all_four_kinds_register(registry):
    assert "geometric" in registry.names("families")
    assert "xy_scaled" in registry.names("blocks")
    assert "l2" in registry.names("objectives")
    assert "stripes" in registry.names("datasets")
    assert "jsonl" in registry.names("trackers")


def test_the_example_tracker_passes_the_kit(plugin, tmp_path):
    from expfam_extras.tracker import JsonLinesTracker

    report = check_tracker(JsonLinesTracker, tmp_path, uri=str(tmp_path / "kit.jsonl"))
    lines = (tmp_path / "kit.jsonl").read_text().splitlines()
    assert len(lines) == report["events"] and sum('"event": "start"' in line for line in lines) == report["runs"]


def test_the_example_family_passes_the_kit_including_initialize(plugin):
    from expfam_extras.geometric import Geometric

    report = check_family(Geometric(2), jnp.array([-0.3, -1.2]), key=jax.random.key(0), n_samples=4000)
    assert report["initialize"]


def test_the_kit_catches_an_initialize_that_leaves_the_parameter_space(plugin, monkeypatch):
    from expfam_extras.geometric import Geometric

    family = Geometric(8)
    data = np.full((50, 8), 40.0)  # mean 40: θ = log(40/41) ≈ −0.025, within the noise of 0
    assert check_initialize(family, data, key=jax.random.key(1))
    monkeypatch.setattr(Geometric, "is_valid_params", lambda self, params: jnp.bool_(True))  # the old, unguarded noise
    with pytest.raises(AssertionError, match="outside the parameter space"):
        check_initialize(family, data, key=jax.random.key(1))


def test_expfam_train_uses_every_example_plugin_from_flags_and_toml(registry, run_toml, tmp_path):
    out, events = tmp_path / "run", tmp_path / "events.jsonl"
    run_toml.write_text(RUN_TOML + '\n[track]\ntrackers = ["jsonl"]\nexperiment = "stripes"\n')
    flags = [*FLAGS, "--config", str(run_toml), "--out", str(out), "--tracking-uri", str(events)]
    result = CliRunner().invoke(create_app(registry), ["train", *flags])
    assert result.exit_code == 0, result.output
    # the tracker plugin (named in [track], its file from --tracking-uri) heard the run's events in order
    heard = [json.loads(line) for line in events.read_text().splitlines()]
    history = read_history(out)
    assert [e["event"] for e in heard] == ["start"] + ["log_row"] * len(history) + [
        "log_metrics",
        "log_artifacts",
        "end",
    ]
    assert heard[0]["run_dir"] == str(out.resolve()) and heard[0]["experiment"] == "stripes"
    assert heard[0]["tags"]["expfam.blocks"] == "xy_scaled" and not heard[0]["resumed"]
    assert [e["row"] for e in heard[1:-3]] == history
    assert heard[-3]["metrics"] == json.loads((out / "metrics.json").read_text())
    assert {"config.toml", "history.csv", "metrics.json", "params.npz", "run.json"} <= set(heard[-2]["files"])
    assert heard[-1] == {**heard[-1], "status": "completed", "step": 30}
    config = read_config(out)
    assert dict(config.model.block_options) == {"xy_scaled": {"init_scale": 0.5}}
    assert dict(config.data.options) == {"n_images": 200, "side": 4}
    assert dict(config.train.loss_weights) == {"l2": 0.001}
    assert "l2" in read_history(out)[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["elbo"]) and 0.0 <= metrics["nmi"] <= 1.0
    run = load_run(out, registry=registry)
    assert run.model.observable.name == "geometric" and run.model.blocks[0].init_scale == 0.5
    assert run.image_shape == (4, 4) and run.assign(np.zeros((3, 16))).shape == (3,)


def test_plugin_options_are_checked_against_the_plugin(registry, run_toml, tmp_path):
    app, out = create_app(registry), str(tmp_path / "never")
    run_toml.write_text(RUN_TOML.replace("init_scale = 0.5", "init_scal = 0.5"))
    result = CliRunner().invoke(app, ["train", *FLAGS, "--config", str(run_toml), "--out", out])
    assert result.exit_code == 2 and "init_scal" in result.stderr and "accepts init_scale" in result.stderr
    run_toml.write_text(RUN_TOML.replace("side = 4", "sides = 4"))
    result = CliRunner().invoke(app, ["train", *FLAGS, "--config", str(run_toml), "--out", out])
    assert result.exit_code == 2 and "sides" in result.stderr and "n_images, side, noise" in result.stderr


@pytest.mark.slow
def test_the_installed_package_trains_from_the_expfam_script(
    example_plugins_site, example_plugins_environment, tmp_path, run_toml
):
    """Installed (`example_plugins_site`: every example package, pip-installed once per test run), found by its entry point."""
    assert list(example_plugins_site.glob("expfam_extras-*.dist-info"))
    script = [sys.executable, "-c", "from cli.app import main; main()"]
    out = tmp_path / "run"
    result = subprocess.run(
        [*script, "train", *FLAGS, "--config", str(run_toml), "--out", str(out)],
        capture_output=True,
        text=True,
        env=example_plugins_environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "metrics.json").is_file() and "l2" in read_history(out)[0]


def test_option_flags_are_read_as_toml_scalars_and_a_later_flag_wins():
    from cli.train import parse_option_flags

    parsed = parse_option_flags(
        ["xy.a=1", "xy.b=1.5", "xy.c=true", 'xy.d="two words"', "xy.e=fast", "l2.average=false", "xy.a=2"],
        "--block-option",
    )
    assert parsed == {"xy": {"a": 2, "b": 1.5, "c": True, "d": "two words", "e": "fast"}, "l2": {"average": False}}
    assert type(parsed["xy"]["a"]) is int and type(parsed["xy"]["b"]) is float


def test_the_l2_option_average_divides_the_penalty_by_the_number_of_entries(registry):
    from expfam.builder import build_model
    from expfam.objective import make_loss

    model = build_model(
        observable="geometric", data_dim=4, n_latent=3, n_clusters=2, blocks="xy_scaled", registry=registry
    )
    params = model.init(jax.random.key(0))
    x = jnp.ones((2, 4))
    weights = {"elbo": 1.0, "l2": 1.0}
    _, summed = make_loss(model, weights, registry=registry)(params, x, jax.random.key(1), 0)
    loss = make_loss(model, weights, registry=registry, options={"l2": {"average": True}})
    _, averaged = loss(params, x, jax.random.key(1), 0)
    expected = float(jnp.sum(params["likelihood"]["blocks"]["xy_scaled"] ** 2))
    assert float(summed["l2"]) == pytest.approx(expected, rel=1e-12)
    assert float(averaged["l2"]) == pytest.approx(expected / 12, rel=1e-12)


def test_block_and_loss_options_from_flags_win_over_the_config_and_the_run_reloads_them(registry, run_toml, tmp_path):
    run_toml.write_text(RUN_TOML + "\n[train.loss_options.l2]\naverage = false\n")
    out = tmp_path / "run"
    flags = ["--block-option", "xy_scaled.init_scale=0.25", "--loss-option", "l2.average=true"]
    arguments = ["train", *FLAGS, *flags, "--config", str(run_toml), "--out", str(out)]
    result = CliRunner().invoke(create_app(registry), arguments)
    assert result.exit_code == 0, result.output
    config = read_config(out)
    assert config.model.block_options.to_dict() == {"xy_scaled": {"init_scale": 0.25}}
    assert config.train.loss_options.to_dict() == {"l2": {"average": True}}
    assert "loss_options = {l2 = {average = true}}" in (out / "config.toml").read_text()
    run = load_run(out, registry=registry)
    assert run.model.blocks[0].init_scale == 0.25 and run.config.train.loss_options == config.train.loss_options


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--block-option", "xy_scaled=0.5"], "--block-option 'xy_scaled=0.5': expected NAME.KEY=VALUE"),
        (["--block-option", "xy_scaled.init_scale"], "expected NAME.KEY=VALUE, e.g. --block-option xy_scaled.init"),
        (["--loss-option", "l2.average="], "--loss-option 'l2.average=': expected NAME.KEY=VALUE"),
        (["--loss-option", "l2.average=[1, 2]"], "the value must be a number, true/false or a string, got list"),
        (["--loss-option", "l2.avg=true"], "loss term 'l2' has no option(s) avg; it accepts average"),
        (["--loss-option", "elbo.beta=2"], "loss term 'elbo' has no option(s) beta; it accepts no options"),
        (["--loss-option", "l2.average=yes"], "loss term 'l2': average must be true or false, got 'yes'"),
        (["--block-option", "xy_scaled.init_scal=1"], "block 'xy_scaled' has no option(s) init_scal"),
        (["--loss-option", "prior_l2.scale=1"], "[train.loss_options] has options for prior_l2, which the loss does"),
    ],
)
def test_bad_option_flags_exit_2_with_the_problem_before_any_file_is_written(
    registry, run_toml, tmp_path, flags, message
):
    out = tmp_path / "never"
    result = CliRunner().invoke(
        create_app(registry), ["train", *FLAGS, *flags, "--config", str(run_toml), "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert not out.exists()


def test_the_example_loss_term_and_dataset_pass_the_kit_with_their_options(plugin, registry):
    import dataclasses

    from expfam_extras.dataset import Stripes

    from expfam.builder import build_model
    from expfam.objective import build_objective
    from expfam.testing import check_dataset, check_objective, random_model_params, random_observations

    def mean_square(model, params, x, step, settings):
        entries = params["likelihood"]["blocks"]["xy_scaled"]
        value = jnp.mean(entries**2)
        return value, value

    model = build_model(
        observable="geometric", data_dim=3, n_latent=2, n_clusters=2, blocks="xy_scaled", registry=registry
    )
    params = random_model_params(model, jax.random.key(0))
    term = build_objective("l2", {"average": True}, registry=registry)
    x = random_observations(model.observable, 0, 2)
    assert check_objective(term, model, params, x, key=jax.random.key(1), exact=mean_square, n_draws=4)["unbiased"]
    report = check_dataset(dataclasses.replace(Stripes(), n_images=40, side=3), n_trials=4)
    assert report == {"shapes": True, "support": True, "labels": True, "determinism": True}


def test_resume_refuses_option_flags_since_the_run_keeps_its_own(registry, tmp_path):
    flags = ["--block-option", "xy_scaled.init_scale=0.25", "--loss-option", "l2.average=true"]
    result = CliRunner().invoke(create_app(registry), ["train", "--resume", str(tmp_path / "run"), *flags])
    assert result.exit_code == 2, result.output
    assert "drop --block-option, --loss-option" in " ".join(result.stderr.split())
