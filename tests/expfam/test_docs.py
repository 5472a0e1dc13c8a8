"""Every Python example of the README and of every documentation page runs as written.

Each document's ```python blocks run in order in one namespace (a later block
may use an earlier block's names), in a temporary working directory; any
``test_*`` function a document defines is then called, as pytest would. A block
written as an interactive session (``>>>`` prompts) runs as a doctest. A block
that cannot run here carries, on the line just before its fence,
``<!-- not run: <reason> -->``; shell examples (```bash, ```console) are not run.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from expfam import testing
from expfam.testing import scipy_reference

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(
    r"(?:^<!-- not run: (?P<reason>[^\n]*?) -->\n)?^```python\n(?P<source>.*?)^```", re.DOTALL | re.MULTILINE
)


def python_blocks(path: Path) -> list[tuple[str, str | None]]:
    """``(source, reason not run or None)`` of each python block of ``path``."""
    return [(m["source"], m["reason"]) for m in PYTHON_BLOCK.finditer(path.read_text(encoding="utf-8"))]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


WITH_EXAMPLES = [_name(p) for p in DOCUMENTS if python_blocks(p)]


def test_skipped_blocks_say_why() -> None:
    reasons = [
        (name, reason) for name in WITH_EXAMPLES for _, reason in python_blocks(ROOT / name) if reason is not None
    ]
    assert all(len(reason.split()) >= 3 for _, reason in reasons), reasons


def test_most_documents_have_examples() -> None:
    assert "README.md" in WITH_EXAMPLES
    assert len(WITH_EXAMPLES) >= 12, WITH_EXAMPLES


def _run_doctest(source: str, namespace: dict[str, object], label: str) -> None:
    test = doctest.DocTestParser().get_doctest(source, namespace, label, label, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, clear_globs=False)
    assert runner.summarize(verbose=False).failed == 0, f"{label}: a doctest example failed (see the output above)"


@pytest.mark.slow
@pytest.mark.parametrize("document", WITH_EXAMPLES)
def test_examples_run(document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    references = dict(scipy_reference.SCIPY_REFERENCES)  # examples may register their own
    monkeypatch.setattr(scipy_reference, "SCIPY_REFERENCES", references)
    monkeypatch.setattr(testing, "SCIPY_REFERENCES", references)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict[str, object] = {"__name__": f"docs_{Path(document).stem}"}
    ran = 0
    for number, (source, reason) in enumerate(python_blocks(ROOT / document), start=1):
        if reason is not None:
            continue
        label = f"{document} (python block {number})"
        if source.lstrip().startswith(">>>"):
            _run_doctest(source, namespace, label)
        else:
            exec(compile(source, label, "exec", dont_inherit=True), namespace)
        ran += 1
    assert ran, f"{document}: every python block is marked as not run"
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value()
