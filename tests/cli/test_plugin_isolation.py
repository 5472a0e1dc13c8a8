"""A broken third-party plugin, or a package-name clash, does not take the command line down.

Each test builds a throwaway distribution in a temporary directory, installs it
with ``pip install --target`` into another temporary directory (nothing goes
into the test environment, so nothing needs uninstalling) and runs ``expfam``
in a fresh process with that directory first on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import expfam

BROKEN_MESSAGE = "this plugin is broken on purpose"

#: A short training run: compiles and trains in seconds.
TINY_TRAIN = [
    "train",
    "--n-steps",
    "20",
    "--log-every",
    "10",
    "--n-latent",
    "4",
    "--n-clusters",
    "3",
    "--batch-size",
    "32",
    "--n-mc-samples",
    "2",
    "--n-conj-samples",
    "32",
]


def _expfam_command() -> list[str]:
    script = Path(sys.executable).with_name("expfam")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "expfam"]


def _pip_install(source: Path, target: Path) -> None:
    """``pip install --no-deps --target``, offline when a recent setuptools is already here."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    try:
        import setuptools
    except ImportError:
        setuptools = None
    if setuptools is not None:
        version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
        if version >= (70, 1) or importlib.util.find_spec("wheel") is not None:
            command.append("--no-build-isolation")
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def _write_distribution(root: Path, name: str, files: dict[str, str], entry_points: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "0.1.0"

            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
        + entry_points
    )
    for relative, text in files.items():
        path = root / "src" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _run(arguments: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [*_expfam_command(), *arguments], capture_output=True, text=True, env=environment, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding ``expfam-broken-demo``, whose entry-point module raises on import."""
    base = tmp_path_factory.mktemp("broken-plugin")
    source = _write_distribution(
        base / "source",
        "expfam-broken-demo",
        {
            "broken_demo/__init__.py": "",
            "broken_demo/plugin.py": f"raise RuntimeError({BROKEN_MESSAGE!r})\n",
        },
        '\n[project.entry-points.expfam]\nbroken = "broken_demo.plugin"\n',
    )
    _pip_install(source, base / "site")
    return base / "site"


@pytest.mark.slow
def test_a_broken_plugin_leaves_help_working_and_is_warned_about(broken_site: Path, tmp_path: Path) -> None:
    result = _run(["--help"], broken_site, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: expfam" in result.stdout and "Traceback" not in result.stderr
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("warning: plugin skipped: broken (expfam-broken-demo 0.1.0): RuntimeError: ")


@pytest.mark.slow
def test_expfam_plugins_names_the_broken_plugin_in_one_line(broken_site: Path, tmp_path: Path) -> None:
    result = _run(["plugins"], broken_site, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    failed = lines[lines.index("failed to load (skipped):") + 1 :]
    assert failed == [f"  broken (expfam-broken-demo 0.1.0): RuntimeError: {BROKEN_MESSAGE}"]
    assert any(line.strip().startswith("binomial") for line in lines)  # the built-ins are all there


@pytest.mark.slow
def test_train_still_works_with_a_broken_plugin_installed(broken_site: Path, tmp_path: Path) -> None:
    result = _run([*TINY_TRAIN, "--out", str(tmp_path / "run"), "--json"], broken_site, tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert Path(document["run_dir"]) == tmp_path / "run"
    assert set(document["metrics"]) >= {"nmi", "r2", "purity", "recon"}
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_foreign_top_level_cli_package_is_named_in_one_line(tmp_path: Path) -> None:
    source = _write_distribution(tmp_path / "source", "expfam-clash-demo", {"cli/__init__.py": '"""Not expfam."""\n'})
    _pip_install(source, tmp_path / "site")
    result = _run(["--help"], tmp_path / "site", tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the top-level package 'cli' is also installed by 'expfam-clash-demo'"), line
    assert "Traceback" not in result.stderr


def test_version_is_the_package_version(runner, app) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"expfam {expfam.__version__}"


def test_short_help_and_exit_codes(runner, app) -> None:
    short, long = runner.invoke(app, ["-h"]), runner.invoke(app, ["--help"])
    assert short.exit_code == long.exit_code == 0 and short.stdout == long.stdout
    text = " ".join(short.stdout.split())
    assert "--install-completion" in text and "--show-completion" in text
    assert "Exit codes: 0 success; 1 a run failed" in text and "2 bad input" in text and "130 interrupted" in text
    for command in ("train", "evaluate", "compare", "sweep", "plugins"):
        result = runner.invoke(app, [command, "-h"])
        assert result.exit_code == 0 and "Exit codes:" in result.stdout, command


def test_paths_are_shown_as_path(runner, app) -> None:
    text = runner.invoke(app, ["train", "--help"]).stdout
    for option in ("--data", "--config", "--out"):
        assert f"{option} PATH" in text, option
    assert "<str>" not in text
