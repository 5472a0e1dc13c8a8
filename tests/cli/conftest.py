"""Shared pieces of the CLI tests: the app, a runner, a tiny [evaluate] file, and the error check."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

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
