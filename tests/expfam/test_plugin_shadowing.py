"""A same-named module ahead of expfam's own packages, or a broken plugin, is loud, not silent.

Each shadowing test writes a real ``objectives.py`` (or ``interactions.py``, or a folder)
into a temporary directory and runs Python there in a fresh process, so the directory
is first on ``sys.path`` there and the test process's own imports stay clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from expfam import plugins
from expfam.errors import PluginLoadError, PluginWarning

# The README's test line leaves these real Python processes to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

LIBRARY_USE = """
import numpy as np
from expfam.sklearn import HarmoniumClustering
HarmoniumClustering(n_clusters=2, n_latent=2, n_steps=2).fit(np.ones((8, 4)))
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=environment, timeout=600
    )


@pytest.mark.parametrize("package", ["objectives", "interactions"])
def test_a_shadowing_file_in_the_working_directory_is_named_in_library_use(tmp_path: Path, package: str) -> None:
    shadow = tmp_path / f"{package}.py"
    shadow.write_text("HELPERS = 1\n")
    result = _python(LIBRARY_USE, tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("expfam.errors.PluginLoadError: expfam's built-in plugin"), result.stderr
    assert str(shadow) in last and "rename that file" in last, last
    assert "unknown objective" not in result.stderr


def test_a_shadowing_package_that_imports_cleanly_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "objectives"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "plugin.py").write_text("def expfam_objectives():\n    return []\n")
    result = _python("from expfam.plugins import get_registry; get_registry()", tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and last.startswith("expfam.errors.PluginLoadError:"), result.stderr
    assert f"shadowed by the folder {folder}" in last and "rename that folder" in last, last


def test_the_command_line_names_the_shadowing_file(tmp_path: Path) -> None:
    shadow = tmp_path / "objectives.py"
    shadow.write_text("HELPERS = 1\n")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "expfam", "plugins"], capture_output=True, text=True, cwd=tmp_path, env=environment
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the top-level package 'objectives' is shadowed by the file "), line
    assert str(shadow) in line and "rename that file" in line
    assert "another installation" not in line


def test_without_a_shadowing_file_the_same_process_loads_every_loss_term(tmp_path: Path) -> None:
    result = _python("from expfam.plugins import get_registry; print(get_registry().names('objectives'))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'elbo'" in result.stdout


def test_a_broken_builtin_entry_point_raises_with_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = metadata.EntryPoint(name="objectives", value="objectives.no_such_plugin", group="expfam")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [broken])
    with pytest.raises(PluginLoadError, match=r"built-in plugin 'objectives'.*ModuleNotFoundError.*reinstall expfam"):
        plugins.build_registry()


def test_a_broken_third_party_plugin_warns_in_library_use(monkeypatch: pytest.MonkeyPatch) -> None:
    good = metadata.EntryPoint(name="families", value="expfam.families.plugin", group="expfam")
    bad = metadata.EntryPoint(name="broken", value="expfam_no_such_module.plugin", group="expfam")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [bad, good])
    with pytest.warns(PluginWarning, match=r"expfam plugin skipped: broken \(unknown distribution\): ModuleNotFound"):
        registry = plugins.build_registry()
    assert "binomial" in registry.names("families")
