"""``expfam compare`` names the configuration keys that differ between the runs, and only those."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from expfam.experiment.config import load_config
from expfam.experiment.runs.solo import train_run


@pytest.fixture(scope="module")
def other_run(tiny_run_toml, tmp_path_factory) -> Path:
    """The tiny run trained again with two settings changed (n_steps 6, seed 3)."""
    config = load_config(tiny_run_toml)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, n_steps=6, seed=3))
    out = tmp_path_factory.mktemp("other") / "other"
    train_run(config, out, plots=False)
    return out


def _toml_differences(first: Path, second: Path) -> dict[str, list]:
    """The differing keys, read from the two config.toml files with tomllib (the reference)."""
    tables = [tomllib.loads((run / "config.toml").read_text()) for run in (first, second)]
    flat = [{f"{s}.{k}": v for s, table in t.items() for k, v in table.items()} for t in tables]
    return {key: [flat[0].get(key), flat[1].get(key)] for key in flat[0] if flat[0].get(key) != flat[1].get(key)}


def test_compare_lists_the_keys_that_differ(runner, app, finished_run, other_run) -> None:
    expected = _toml_differences(finished_run, other_run)
    assert set(expected) == {"train.n_steps", "train.seed"}  # the fixture changed exactly these
    result = runner.invoke(app, ["compare", str(finished_run), str(other_run)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("Configuration keys that differ (from each run's config.toml):")
    rows = [line for line in lines[start + 1 :] if line.startswith("| ") and not line.startswith("| Key |")]
    assert rows == [f"| {key} | {first} | {second} |" for key, (first, second) in expected.items()]


def test_compare_json_carries_the_differences(runner, app, finished_run, other_run) -> None:
    result = runner.invoke(app, ["compare", str(finished_run), str(other_run), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["differs"] == _toml_differences(finished_run, other_run)


def test_compare_of_runs_with_one_configuration_says_nothing_extra(runner, app, finished_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    result = runner.invoke(app, ["compare", str(finished_run), str(copy)])
    assert result.exit_code == 0, result.output
    assert "differ" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("copy (hierarchical)")  # the NMI line ends it
    document = json.loads(runner.invoke(app, ["compare", str(finished_run), str(copy), "--json"]).stdout)
    assert document["differs"] == {}
