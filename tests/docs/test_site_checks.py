"""The checks that fail the site's build (docs/hooks/site_checks.py), on small HTML pages.

Each check is shown catching its case, in the forms MkDocs and mkdocstrings produce, and
passing clean HTML, including the look-alikes a page may legitimately hold (a role quoted
inside code, a link to another site). No MkDocs needed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "docs" / "hooks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


checks = _load("site_checks")

CLEAN = """<html><head>
<link rel="stylesheet" href="assets/stylesheets/main.css">
<link rel="icon" href="assets/images/favicon.png">
<script src="javascripts/mathjax/tex-svg-full.js"></script>
</head><body><article>
<h1 id="model">Model</h1>
<p>See <a href="model.html#elbo">the ELBO</a>, <a href="#model">above</a>, <a href="../index.html">home</a>,
<a href="https://github.com/expfam/expfam/">the repository</a> and <a href="mailto:a@b.c">mail</a>.</p>
<p>Write <code>:func:`name`</code> no more; use <code>[`name`][expfam.name]</code>.</p>
<pre><code>.. math::
    x = 1
:meth:`old`</code></pre>
<p>The ratio 3:2 and the time 12:30: neither is a role. <a href="digits_defaults/index.html">results</a></p>
</article></body></html>"""


def test_clean_page_passes_every_check() -> None:
    assert checks.rest_markup(CLEAN) == []
    assert checks.remote_resources(CLEAN) == []
    assert checks.folder_links(CLEAN) == []
    existing = {"assets/stylesheets/main.css", "assets/images/favicon.png", "javascripts/mathjax/tex-svg-full.js"}
    assert checks.missing_resources("model.html", CLEAN, existing) == []
    assert checks.check_pages([("model.html", CLEAN)], existing) == []


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # what mkdocstrings makes of a reST role: the role's name, then the name as code
        ("<p>the shape :attr:<code>data_shape</code> of one observation</p>", ":attr:`data_shape`"),
        ("<p>use :meth:<code>log_densities</code>.</p>", ":meth:`log_densities`"),
        ("<p>a :class:<code>~expfam.plugins.Registry</code></p>", ":class:`~expfam.plugins.Registry`"),
        ("<p>see :mod:<code>expfam.experiment.pipeline</code></p>", ":mod:`expfam.experiment.pipeline`"),
        # a role left as text, backticks and all (escaped or not)
        ("<p>call :func:`build_model` first</p>", ":func:`build_model`"),
        ("<p>call :py:func:&#96;build_model&#96; first</p>", ":py:func:`build_model`"),
        # a directive rendered as a paragraph
        ("<p>The bound:</p><p>.. math::</p><pre><code>x = 1</code></pre>", ".. math::"),
    ],
)
def test_raw_rest_is_found_with_its_context(html: str, expected: str) -> None:
    found = checks.rest_markup(html)
    assert len(found) == 1, found
    assert expected in found[0]


def test_raw_rest_is_found_once_per_role_in_page_order() -> None:
    html = (
        "<p>A plugin implements :meth:<code>init</code>, :meth:<code>offset</code> and :meth:<code>adjoint</code>.</p>"
    )
    found = checks.rest_markup(html)
    assert len(found) == 3, found
    assert found[0].startswith("…A plugin implements :meth:`init`") and found[-1].endswith(":meth:`adjoint`.…")


@pytest.mark.parametrize(
    "tag",
    [
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>',
        '<script src="http://example.org/x.js"></script>',
        '<script src="//cdn.example.org/x.js"></script>',
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">',
        '<link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>',
        '<img src="https://img.shields.io/badge/x.svg" alt="badge">',
    ],
)
def test_remote_resources_are_found(tag: str) -> None:
    found = checks.remote_resources(f"<html><head>{tag}</head><body></body></html>")
    assert len(found) == 1, found


def test_remote_links_and_canonical_are_not_resources() -> None:
    html = '<link rel="canonical" href="https://expfam.org/x/"><a href="https://cdn.example.org/x.js">a link</a>'
    assert checks.remote_resources(html) == []


@pytest.mark.parametrize("href", ["../", "api/", ".", "..", "results/digits_defaults/#top", "sub/?q=1"])
def test_links_to_folders_are_found(href: str) -> None:
    assert checks.folder_links(f'<p><a href="{href}">x</a></p>') == [f'<a href="{href}">']


def test_missing_local_resource_is_found_relative_to_the_page() -> None:
    html = '<script src="../javascripts/mathjax/tex-svg-full.js"></script><link rel="icon" href="/assets/i.png">'
    assert (
        checks.missing_resources("api/model.html", html, {"javascripts/mathjax/tex-svg-full.js", "assets/i.png"}) == []
    )
    found = checks.missing_resources("api/model.html", html, {"assets/i.png"})
    assert found == ['<script src="../javascripts/mathjax/tex-svg-full.js">']


def test_report_names_each_problem_file_and_snippet(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "index.html").write_text(CLEAN.replace("assets/images/favicon.png", "favicon.png"), encoding="utf-8")
    (tmp_path / "favicon.png").write_bytes(b"")
    (tmp_path / "assets" / "stylesheets").mkdir(parents=True)
    (tmp_path / "assets" / "stylesheets" / "main.css").write_text("", encoding="utf-8")
    (tmp_path / "javascripts" / "mathjax").mkdir(parents=True)
    (tmp_path / "javascripts" / "mathjax" / "tex-svg-full.js").write_text("", encoding="utf-8")
    assert checks.check_site(tmp_path) == []

    bad = (
        "<p>see :class:<code>Harmonium</code></p>" * 7
        + '<script src="https://cdn.x/m.js"></script><a href="../">up</a>'
    )
    (tmp_path / "api" / "model.html").write_text(bad, encoding="utf-8")
    report = checks.check_site(tmp_path)
    assert len(report) == 3, report
    rest, remote, folder = report
    assert rest.startswith("7 raw reST markup") and "in 1 file(s)" in rest
    shown = [line for line in rest.splitlines()[1:]]
    assert len(shown) == checks.SHOWN and all(line.strip().startswith("api/model.html: ") for line in shown)
    assert ":class:`Harmonium`" in shown[0]
    assert remote.startswith("1 remote resources") and 'api/model.html: <script src="https://cdn.x/m.js">' in remote
    assert folder.startswith("1 links to a folder") and 'api/model.html: <a href="../">' in folder
