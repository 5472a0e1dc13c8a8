"""A KL warmup as long as the run is a warning: ``warnings.warn`` in Python, one ``warning:`` line on the CLI."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from expfam.errors import ConfigurationWarning
from expfam.experiment.config import config_warnings, load_config
from expfam.experiment.pipeline import train_run


def _with_train(config, **changes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


@pytest.mark.parametrize(("warmup", "n_steps", "warned"), [(4, 4, True), (9, 4, True), (3, 4, False), (0, 4, False)])
def test_config_warnings_flag_a_warmup_that_never_finishes(tiny_run_toml, warmup, n_steps, warned) -> None:
    config = _with_train(load_config(tiny_run_toml), kl_warmup_steps=warmup, n_steps=n_steps)
    messages = config_warnings(config)
    assert bool(messages) is warned
    if warned:
        [message] = messages
        assert f"kl_warmup_steps = {warmup} is not below n_steps = {n_steps}" in message


def test_train_run_warns_in_python_before_training(tiny_run_toml) -> None:
    config = _with_train(load_config(tiny_run_toml), kl_warmup_steps=4, n_steps=4)
    with pytest.warns(ConfigurationWarning, match="the KL warmup never finishes"):
        train_run(config, None, plots=False)


def test_train_run_with_a_short_warmup_does_not_warn(tiny_run_toml) -> None:
    config = _with_train(load_config(tiny_run_toml), kl_warmup_steps=2, n_steps=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigurationWarning)
        train_run(config, None, plots=False)


def test_the_command_line_prints_the_warning_once(runner, app, tiny_run_toml, tmp_path) -> None:
    out = tmp_path / "run"
    arguments = ["train", "--config", str(tiny_run_toml), "--kl-warmup-steps", "6", "--out", str(out), "--json"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "kl_warmup_steps" in line]
    assert lines == [
        "warning: [train] kl_warmup_steps = 6 is not below n_steps = 4: the KL warmup never finishes, so the run "
        "never trains on the full ELBO; lower kl_warmup_steps (e.g. to 1) or raise n_steps"
    ]
    assert "ConfigurationWarning" not in result.output
    assert (out / "metrics.json").is_file()
