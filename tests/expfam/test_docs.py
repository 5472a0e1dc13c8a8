"""The Python examples of the family, mixture, plugin and test-kit documentation run as written.

Each document's ```python blocks run in order in one namespace (a later block
may use an earlier block's names); any ``test_*`` function a document defines
is then called, as pytest would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expfam import testing
from expfam.testing import scipy_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "document",
    [
        "families.md",
        "mixture.md",
        "plugins.md",
        "testing.md",
        "model.md",
        "blocks.md",
        "objectives.md",
        "training.md",
        "trained-models.md",
        "assign.md",
        "sklearn.md",
        "resume.md",
        "plugin-options.md",
    ],
)
def test_examples_run(document: str, monkeypatch: pytest.MonkeyPatch) -> None:
    references = dict(scipy_reference.SCIPY_REFERENCES)  # examples may register their own
    monkeypatch.setattr(scipy_reference, "SCIPY_REFERENCES", references)
    monkeypatch.setattr(testing, "SCIPY_REFERENCES", references)
    blocks = python_blocks(DOCS / document)
    assert blocks, f"{document} has no python examples"
    namespace: dict[str, object] = {"__name__": f"docs_{document.removesuffix('.md')}"}
    for number, source in enumerate(blocks, start=1):
        code = compile(source, f"{document} (python block {number})", "exec", dont_inherit=True)
        exec(code, namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value()
