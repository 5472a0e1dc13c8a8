"""Docstrings are written in the markup the docs site renders: Markdown, not reST.

mkdocstrings shows reST roles (`:func:` ...), `.. math::` directives and `::` literal
blocks as raw text, so the API reference would print them verbatim. This reads every
docstring of the four packages from the source (no import, no site build) and fails on
any of them, naming the file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("expfam", "interactions", "objectives", "cli")
REST = re.compile(
    r":(?:meth|func|class|mod|attr|data|exc|obj|math|ref):`"  # a role
    r"|^\s*\.\. [a-z-]+::"  # a directive
    r"|\S ?::\s*$",  # a paragraph that opens a literal block
    re.MULTILINE,
)


def docstrings(path: Path) -> list[tuple[int, str]]:
    """`(line, text)` of every string statement of `path` (module, class, function and attribute docstrings)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    ]


def test_the_scan_sees_the_docstrings() -> None:
    count = sum(len(docstrings(path)) for package in PACKAGES for path in (SRC / package).rglob("*.py"))
    assert count > 500, count
    assert REST.search("See :func:`f`.") and REST.search("   .. math::\n") and REST.search("holds ::\n")
    assert not REST.search("See [`f`][expfam.f] and $x$, `a::b`, and $$\n x \n$$")


def test_no_rest_markup_in_docstrings() -> None:
    found = [
        f"{path.relative_to(SRC)}:{line}: {match.group(0).strip()!r}"
        for package in PACKAGES
        for path in sorted((SRC / package).rglob("*.py"))
        for line, text in docstrings(path)
        for match in REST.finditer(text)
    ]
    assert not found, "reST markup in docstrings (write Markdown: [`name`][full.path], $...$, $$...$$):\n" + "\n".join(
        found
    )
