"""The API reference's plan (docs/hooks/api_pages.py): every public module on one page, new
modules placed automatically, the model's pages first. No MkDocs needed."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", ROOT / "docs" / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


api = _load("api_pages")


def _tree(src: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_every_public_module_is_on_exactly_one_page() -> None:
    pages = api.plan()
    placed = [module for modules in pages.values() for module in modules]
    public = [module for root in api.ROOTS for module in api.public_modules(root)]
    assert sorted(placed) == sorted(public)  # once each: no module twice, none missing
    on_disk = {
        ".".join(path.relative_to(api.SRC).with_suffix("").parts).removesuffix(".__init__")
        for root in api.ROOTS
        for path in (api.SRC / root).rglob("*.py")
    }
    assert {m for m in on_disk if not any(part.startswith("_") for part in m.split("."))} == set(placed)
    assert {"expfam.model", "expfam.builder", "expfam.family", "interactions.xy", "cli.app"} <= set(placed)


def test_builder_model_and_families_come_first() -> None:
    entries = api.navigation(api.plan())
    titles = [next(iter(entry)) for entry in entries]
    assert titles[:4] == ["Overview", "Model builder", "Harmonium (the model)", "Families"]
    pages = api.plan()
    assert "expfam.builder" in pages["api/builder.md"] and "expfam.model" in pages["api/model.md"]
    assert "expfam.families.bernoulli" in pages["api/families.md"]


def test_mkdocs_nav_starts_with_getting_started_and_holds_the_reference_entry() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:\n", 1)[1]
    entries = [line.strip() for line in nav.splitlines() if line.startswith("  - ")]
    assert entries[0] == "- Getting started: getting-started.md"
    assert f"- {api.NAV_TITLE}: {api.TOPICS[0].uri}" in entries


def test_a_new_module_lands_on_the_most_specific_claiming_page(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "",
            "pkg/new.py": "",  # on no page: the package's catch-all
            "pkg/_private.py": "",  # not public
            "pkg/sub/__init__.py": "",
            "pkg/sub/x.py": "",
            "pkg/sub/later.py": "",  # on no page: the subpackage's page, after its listed modules
        },
    )
    topics = (
        api.Topic("a.md", "A", "", ("pkg", "pkg.a")),
        api.Topic("sub.md", "Sub", "", ("pkg.sub", "pkg.sub.x"), packages=("pkg.sub",)),
        api.Topic("empty.md", "Empty", "", packages=("pkg.sub.none",)),
        api.Topic("other.md", "Other", "", packages=("pkg",)),
    )
    pages = api.plan(topics, src, ("pkg",))
    assert pages == {
        "a.md": ["pkg", "pkg.a"],
        "sub.md": ["pkg.sub", "pkg.sub.x", "pkg.sub.later"],
        "other.md": ["pkg.new"],
    }


def test_plan_refuses_a_stale_or_doubled_or_homeless_module(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": ""})
    with pytest.raises(ValueError, match=re.escape("'pkg.gone', which is not a public module")):
        api.plan((api.Topic("a.md", "A", "", ("pkg", "pkg.gone")),), src, ("pkg",))
    with pytest.raises(ValueError, match=re.escape("'pkg.a' is listed on both a.md and b.md")):
        api.plan((api.Topic("a.md", "A", "", ("pkg", "pkg.a")), api.Topic("b.md", "B", "", ("pkg.a",))), src, ("pkg",))
    with pytest.raises(ValueError, match=re.escape("no page of docs/hooks/api_pages.py claims 'pkg.a'")):
        api.plan((api.Topic("a.md", "A", "", ("pkg",)),), src, ("pkg",))


def test_a_package_page_shows_only_what_the_package_defines(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "reexports/__init__.py": '"""Doc."""\nfrom reexports.a import A\n__all__ = ["A"]\n_hidden = 1\n',
            "reexports/a.py": "class A: ...\n",
            "defines/__init__.py": "from defines.b import B\nVERSION: str = '1'\ndef helper() -> None: ...\nclass C: ...\n",
            "defines/b.py": "class B: ...\n",
        },
    )
    assert api.directive("reexports", src) == ["::: reexports", "    options:", "      members: false", ""]
    assert api.directive("defines", src)[2] == "      members: [VERSION, helper, C]"
    assert api.directive("reexports.a", src) == ["::: reexports.a", ""]
    # the real packages re-export only: their pages document each name once, where it is defined
    assert api.directive("expfam")[2] == "      members: false"
