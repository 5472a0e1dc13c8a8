"""Shared pieces of the CLI tests: the app, a runner, a tiny [evaluate] file, and the error check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import expfam.experiment.runs.solo
from cli.app import create_app

#: [evaluate] of the tiny runs (only a --config file sets this section).
TINY_TOML = """\
[evaluate]
n_r2_samples = 500
n_iwae_samples = 5
batch_size = 400
"""


@pytest.fixture(scope="session")
def app():
    return create_app()


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture(scope="session")
def tiny_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-config") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def _assert_user_error(result, *fragments: str) -> str:
    """Exit code 2, one line ``error: ...`` on stderr naming every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture()
def assert_user_error():
    """:func:`_assert_user_error`, as a fixture."""
    return _assert_user_error


# ----------------------------------------------------------------- tiny data and a finished run (reliability tests)
#: A run small enough to train in seconds: 16 pixels (4×4), counts 0..4, 3 latent units, 2 clusters.
TINY_RUN_TOML = """\
[model]
n_trials = 4
n_latent = 3
n_clusters = 2

[data]
dataset = "npz"
data = "{data}"

[train]
n_steps = 4
batch_size = 8
log_every = 2
n_conj_samples = 8
checkpoint_every = 1

[evaluate]
n_r2_samples = 50
n_elbo_samples = 2
n_iwae_samples = 3
batch_size = 20
"""


def write_tiny_npz(path):
    """40 training and 12 test images of 4×4 counts in 0..4, with labels 0..2."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 5, (40, 16)),
        y_train=rng.integers(0, 3, 40),
        x_test=rng.integers(0, 5, (12, 16)),
        y_test=rng.integers(0, 3, 12),
    )
    return path


@pytest.fixture(scope="session")
def tiny_run_toml(tmp_path_factory):
    """A run.toml of the tiny run (its data written next to it)."""
    folder = tmp_path_factory.mktemp("tiny-run")
    data = write_tiny_npz(folder / "tiny.npz")
    path = folder / "run.toml"
    path.write_text(TINY_RUN_TOML.format(data=data))
    return path


@pytest.fixture(scope="session")
def finished_run(tiny_run_toml, tmp_path_factory):
    """A finished run directory of the tiny run (trained once per session, without plots). Copy it before use."""
    from expfam.experiment.config import load_config
    from expfam.experiment.runs.solo import train_run

    out = tmp_path_factory.mktemp("finished") / "run"
    train_run(load_config(tiny_run_toml), out, plots=False)
    return out


def snapshot(folder):
    """``{relative path: bytes}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def snapshot_of():
    """:func:`snapshot`, as a fixture."""
    return snapshot


@pytest.fixture(scope="session")
def tiny_npz(tiny_run_toml):
    """The tiny run's data file."""
    return tiny_run_toml.parent / "tiny.npz"


@pytest.fixture()
def no_training(monkeypatch):
    """Fail the test if training starts: every refusal here happens while the inputs are checked."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the inputs were checked")

    monkeypatch.setattr(expfam.experiment.runs.solo, "train", refuse)


@pytest.fixture()
def deny_temporary_files(monkeypatch):
    """`deny(folder)`: creating a temporary file in `folder` fails with "Permission denied".

    Simulated through `tempfile.mkstemp`, since the tests may run as root, which ignores modes.
    """
    import tempfile

    real = tempfile.mkstemp
    denied: set[str] = set()

    def mkstemp(*args, **kwargs):
        if str(kwargs.get("dir", "")) in denied:
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return lambda folder: denied.add(str(folder))
