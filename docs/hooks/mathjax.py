"""MkDocs hook: MathJax inside the built site, so formulas typeset with no network.

MathJax 3.2.2 comes from the ``django-static-mathjax`` package of the ``docs`` extra,
which ships MathJax's files as package data (``mathjax/static/mathjax/``). At build time
this hook adds ``es5/tex-svg-full.js`` (every TeX extension, SVG output: no web fonts, so
nothing further is fetched) and MathJax's licence to the site as
``javascripts/mathjax/``; ``extra_javascript`` in mkdocs.yml loads it. Nothing is
committed to the repository, and ``mkdocs serve`` serves the same files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

#: site path → path inside the installed ``mathjax`` package's ``static/mathjax`` folder
FILES = {
    "javascripts/mathjax/tex-svg-full.js": "es5/tex-svg-full.js",
    "javascripts/mathjax/LICENSE": "LICENSE",
}


def mathjax_root() -> Path:
    """The installed MathJax distribution, or a `PluginError` that says how to install it."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        raise PluginError(
            "MathJax is not installed: the site needs the 'django-static-mathjax' package "
            '(pip install -e ".[docs]" installs it)'
        )
    root = Path(spec.origin).parent / "static" / "mathjax"
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        raise PluginError(
            f"MathJax at {root} lacks {', '.join(missing)}; reinstall the docs extra "
            '(pip install -e ".[docs]" pins django-static-mathjax==3.2.2.1)'
        )
    return root


def on_files(files: Files, config: Any) -> Files:
    """Add MathJax's files to the site, copied from the installed package."""
    root = mathjax_root()
    for uri, name in FILES.items():
        files.append(File.generated(config, uri, abs_src_path=str(root / name)))
    return files
