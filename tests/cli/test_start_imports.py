"""Every command starts without importing scikit-learn, SciPy's optimisers or pandas.

Importing them takes over a second; `expfam --help`, `expfam plugins` and a run that is refused
before training must not wait for that. The modules that cluster or score import them when they
do (`expfam.experiment.train.cluster_start`, `expfam.metrics`).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sklearn", "scipy.optimize", "scipy.stats", "pandas", "matplotlib")


def test_the_command_line_imports_none_of_the_heavy_libraries() -> None:
    probe = (
        "import json, sys; import cli.app, expfam.__main__; "
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
