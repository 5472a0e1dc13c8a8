"""MkDocs hook: checks of the built HTML that fail the build.

After every build, each HTML page of the site is read back and the build fails (with the
file and the offending snippet of the first few findings of each kind) when a page has

- **raw reST** in its rendered text: a role such as ``:func:`name``` (mkdocstrings
  renders it as the role's name followed by code) or a directive such as ``.. math::``;
  text inside ``<code>``, ``<pre>``, ``<script>`` and ``<style>`` is quoted code, not
  prose, and is not searched;
- a **remote resource**: a ``<script src>``, a ``<link href>`` that loads something
  (stylesheet, preload, icon, ...) or an ``<img>``/``<iframe>``/... ``src`` on another
  host, which a reader without network would not get;
- a **link to a folder**: an internal ``href`` whose path ends in ``/`` (or is ``.``/``..``),
  which shows a directory listing when the site is opened from disk;
- a **missing local resource**: a script, stylesheet or image inside the site that the
  page loads but the build did not write (e.g. MathJax, added by docs/hooks/mathjax.py).

The checks are plain functions of one page's HTML (tested without MkDocs in
tests/docs/test_site_checks.py); ``on_post_build`` applies them to the site.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

#: reST roles: ``:func:`x```, ``:py:meth:`x```, ... (the backtick stands for the code that follows)
REST_ROLE = re.compile(r":(?:py:)?(?:meth|func|class|mod|attr|data|exc|obj|math|ref|doc):`")
#: reST directives: ``.. math::``, ``.. note::``, ...
REST_DIRECTIVE = re.compile(r"\.\. [a-z][a-z-]*::")
#: elements whose text is code or not text at all
QUOTED = {"code", "pre", "script", "style", "kbd", "samp"}
#: ``<link rel=...>`` values that make a browser fetch the ``href``
FETCHING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "icon", "manifest"}
#: elements whose ``src`` a browser fetches
FETCHING_SRC = {"script", "img", "iframe", "source", "video", "audio", "embed", "track"}
#: elements inside a line of text; any other tag separates the text around it
INLINE = {
    "a",
    "abbr",
    "b",
    "cite",
    "code",
    "em",
    "i",
    "kbd",
    "mark",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "u",
    "var",
}
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
SNIPPET = 40  # characters of context each side of a finding
SHOWN = 5  # findings listed per kind
OPEN, CLOSE = "\ue000", "\ue001"  # private-use marks around inline code's text in the prose


def _is_remote(url: str) -> bool:
    """Whether ``url`` points at another host (``http(s)://`` or protocol-relative ``//``)."""
    url = url.strip().lower()
    return url.startswith(("http://", "https://", "//"))


class _Page(HTMLParser):
    """One pass over a page: its prose (code as a backtick pair), fetched URLs and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.prose: list[str] = []
        self.fetched: list[tuple[str, str]] = []  # (URL, the tag that fetches it)
        self.links: list[str] = []
        self._quoted: list[str] = []  # open quoted elements, innermost last

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in FETCHING_SRC and values.get("src"):
            self.fetched.append((values["src"], f'<{tag} src="{values["src"]}">'))
        if tag == "link" and FETCHING_RELS & set(values.get("rel", "").lower().split()) and values.get("href"):
            self.fetched.append((values["href"], f'<link rel="{values["rel"]}" href="{values["href"]}">'))
        if tag not in INLINE:
            self.prose.append("\n")
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        if tag in QUOTED:
            if not self._quoted and tag == "code":
                self.prose.append(OPEN)  # a role renders as ':func:' followed by <code>
            self._quoted.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in INLINE:
            self.prose.append("\n")
        if tag in QUOTED and tag in self._quoted:
            while self._quoted.pop() != tag:
                pass
            if not self._quoted and tag == "code":
                self.prose.append(CLOSE)

    def handle_data(self, data: str) -> None:
        if not self._quoted:
            self.prose.append(data)
        elif self._quoted == ["code"]:
            self.prose.append(data)  # inline code's text, kept for the snippet (not searched alone)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _snippet(text: str, start: int, end: int) -> str:
    piece = text[max(0, start - SNIPPET) : end + SNIPPET].replace(OPEN, "`").replace(CLOSE, "`")
    return "…" + " ".join(piece.split()) + "…"


def rest_markup(html: str) -> list[str]:
    """Snippets of raw reST roles and directives in the rendered text of ``html``.

    Inline code is searched as a backtick pair with its text blanked out (a role renders
    as ``:func:<code>name</code>``), so a role written *inside* code, or inside a
    ``<pre>`` block, is a quotation and not reported.
    """
    text = "".join(_parse(html).prose)
    masked = re.sub(f"{OPEN}[^{CLOSE}]*{CLOSE}", lambda m: "`" + " " * (len(m.group()) - 2) + "`", text)
    found = [m.span() for pattern in (REST_ROLE, REST_DIRECTIVE) for m in pattern.finditer(masked)]
    return [_snippet(text, start, end) for start, end in sorted(found)]


def remote_resources(html: str) -> list[str]:
    """The tags of ``html`` that make a browser fetch something from another host."""
    return [tag for url, tag in _parse(html).fetched if _is_remote(url)]


def folder_links(html: str) -> list[str]:
    """The internal links of ``html`` whose path is a folder (ends in ``/``, or is ``.``/``..``)."""
    found = []
    for href in _parse(html).links:
        if not href or href.startswith(("#", "//")) or SCHEME.match(href):
            continue  # an anchor on the page, or another site
        path = href.split("#", 1)[0].split("?", 1)[0]
        if path and (path.endswith("/") or path.rsplit("/", 1)[-1] in {".", ".."}):
            found.append(f'<a href="{href}">')
    return found


#: what each check looks for → the check
CHECKS: dict[str, Callable[[str], list[str]]] = {
    "raw reST markup in the rendered text (convert it to Markdown; see docs/development.md)": rest_markup,
    "remote resources (vendor them into the site; it must read offline)": remote_resources,
    "links to a folder (link the page file, e.g. page.html; use_directory_urls is false)": folder_links,
}


MISSING = "local resources the site does not contain (the build should have written them)"


def missing_resources(name: str, html: str, existing: set[str]) -> list[str]:
    """The tags of page ``name`` that load a file of the site absent from ``existing``.

    ``existing`` holds the site's files as ``/``-separated paths relative to its root;
    ``name`` is the page's path in the same form.
    """
    found = []
    for url, tag in _parse(html).fetched:
        if _is_remote(url) or SCHEME.match(url):
            continue  # another host (its own check), or data:, blob:, ...
        path = url.split("#", 1)[0].split("?", 1)[0]
        base = "" if path.startswith("/") else posixpath.dirname(name)  # "/x": from the site's root (404.html)
        target = posixpath.normpath(posixpath.join(base, path.lstrip("/")))
        if path and target not in existing:
            found.append(tag)
    return found


def check_pages(pages: Iterable[tuple[str, str]], existing: set[str] | None = None) -> list[str]:
    """A report of every check's findings over ``(name, html)`` pairs: one entry per kind found.

    Each entry names the problem, how many findings in how many files, and the first
    few as ``file: snippet``. An empty list means the pages pass. With ``existing`` (the
    site's files, relative to its root), the resources a page loads are looked up too.
    """
    findings: dict[str, list[tuple[str, str]]] = {kind: [] for kind in [*CHECKS, MISSING]}
    for name, html in pages:
        for kind, check in CHECKS.items():
            findings[kind] += [(name, item) for item in check(html)]
        if existing is not None:
            findings[MISSING] += [(name, item) for item in missing_resources(name, html, existing)]
    report = []
    for kind, found in findings.items():
        if not found:
            continue
        files = len({name for name, _ in found})
        lines = [f"{len(found)} {kind}, in {files} file(s); the first {min(len(found), SHOWN)}:"]
        lines += [f"    {name}: {item}" for name, item in found[:SHOWN]]
        report.append("\n".join(lines))
    return report


def check_site(site_dir: Path) -> list[str]:
    """`check_pages` over every HTML file under ``site_dir`` (names relative to it)."""
    existing = {path.relative_to(site_dir).as_posix() for path in site_dir.rglob("*") if path.is_file()}
    files = sorted(site_dir.rglob("*.html"))
    pages = ((path.relative_to(site_dir).as_posix(), path.read_text(encoding="utf-8")) for path in files)
    return check_pages(pages, existing)


def on_post_build(config: Any) -> None:
    """Fail the build when a check finds anything in the built site."""
    from mkdocs.exceptions import PluginError

    report = check_site(Path(config["site_dir"]))
    if report:
        raise PluginError("the built site fails its checks (docs/hooks/site_checks.py):\n" + "\n".join(report))
