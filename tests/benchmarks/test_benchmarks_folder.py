"""benchmarks/ keeps only what a user runs: at most eight files, each documented and smoke-tested."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path for path in (ROOT / "benchmarks").iterdir() if not path.name.startswith("."))


def test_benchmarks_holds_at_most_eight_files_each_documented_with_its_command() -> None:
    assert 1 <= len(SCRIPTS) <= 8, f"benchmarks/ holds {len(SCRIPTS)} files: {[p.name for p in SCRIPTS]}"
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    undocumented = [path.name for path in SCRIPTS if f"benchmarks/{path.name}" not in page]
    assert not undocumented, f"docs/benchmarks.md does not show how to run {undocumented}"


def test_every_python_benchmark_has_its_smoke_test() -> None:
    here = Path(__file__).parent
    untested = [
        path.name for path in SCRIPTS if path.suffix == ".py" and not (here / f"test_{path.stem}_script.py").is_file()
    ]
    assert not untested, f"no tests/benchmarks/test_<name>_script.py for {untested}"
