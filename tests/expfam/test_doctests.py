"""Every docstring example of every public module runs as a doctest.

An example that cannot run here (it needs a download, MNIST files or a long
training run) carries ``# doctest: +SKIP`` on its lines; the reason is stated in
the docstring next to it.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

# The README's test line leaves the docstring examples (like the documentation pages' examples) to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("expfam", "interactions", "objectives", "cli")


def public_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if any(part.startswith("_") for part in parts[1:]):
                continue
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module_name", public_modules())
def test_docstring_examples_run(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name, globs=dict(vars(module))):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} doctest examples of {module_name} failed"


def test_the_doctests_cover_something() -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(
        len(test.examples) for name in public_modules() for test in finder.find(importlib.import_module(name), name)
    )
    assert examples >= 20, examples
