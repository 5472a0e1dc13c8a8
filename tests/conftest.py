"""Test-session configuration: float64, one persistent compilation cache, hypothesis defaults.

The library sets no JAX configuration at import time; the test kit
(`expfam.testing`) needs float64, so the whole test session enables it
here, before any test module computes anything.

**One compilation cache for the whole run.** Before anything compiles, the session makes a
temporary folder (never the user's home) and points JAX's persistent compilation cache at it,
with the minimum compile time and entry size at 0 so that small programs are kept too. The
same settings go into the environment, so the Python + JAX subprocesses the tests start
(the command line, sweep workers, benchmark scripts) read and fill the same cache: a program
compiled once in the run is loaded, not compiled again, by every later module and process.
The folder is removed when the session ends. `EXPFAM_TEST_JAX_CACHE=DIR` uses `DIR` instead
and keeps it (a warm cache across runs, for development).

`EXPFAM_TEST_COMPILE_REPORT=FILE` writes, per test, its wall time and the seconds JAX spent
tracing, lowering and compiling in the test process (`jax.monitoring` duration events) as a
CSV, the table behind docs/development.md's "Where the suite's time goes".
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# Property tests compile per shape and run statistical checks: no deadline, few examples.
# `pytest --hypothesis-profile=quick` runs five examples per property instead of twenty.
settings.register_profile("expfam", max_examples=20, deadline=None)
settings.register_profile("quick", max_examples=5, deadline=None)
settings.load_profile("expfam")

#: The persistent-cache settings, as JAX reads them from the environment (subprocesses) and config.
_CACHE_SETTINGS = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": ("jax_persistent_cache_min_compile_time_secs", 0.0),
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": ("jax_persistent_cache_min_entry_size_bytes", 0),
}
_made_cache: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point this process and every subprocess at one persistent compilation cache for the run."""
    folder = os.environ.get("EXPFAM_TEST_JAX_CACHE")
    if not folder:
        folder = tempfile.mkdtemp(prefix="expfam-test-jax-cache-")
        _made_cache.append(folder)
        os.environ["EXPFAM_TEST_JAX_CACHE"] = folder  # subprocesses that run pytest reuse it
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    jax.config.update("jax_compilation_cache_dir", folder)
    for variable, (option, value) in _CACHE_SETTINGS.items():
        os.environ[variable] = str(value)
        jax.config.update(option, value)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the cache folder this session made (a folder given by the user is kept)."""
    for folder in _made_cache:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("EXPFAM_TEST_JAX_CACHE") == folder:
            del os.environ["EXPFAM_TEST_JAX_CACHE"]
    _made_cache.clear()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs() -> Iterator[None]:
    """After each test module, drop the in-memory compiled programs (they stay in the persistent cache).

    One process compiles thousands of programs over the suite; keeping all of them alive
    exhausts the process's memory mappings (the CPU backend maps each program's code) and
    crashed XLA's compiler late in the run. What is dropped here is loaded back from the
    run's persistent cache when a later module needs it, not compiled again.
    """
    yield
    jax.clear_caches()


_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = [0.0]
_listening: list[bool] = []
_rows: list[tuple[str, float, float]] = []


def _on_duration(event: str, seconds: float, **_: object) -> None:
    if event in _COMPILE_EVENTS:
        _compile_seconds[0] += seconds


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With `EXPFAM_TEST_COMPILE_REPORT`, time each test (setup, call, teardown) and its compile seconds."""
    if not os.environ.get("EXPFAM_TEST_COMPILE_REPORT"):
        yield
        return
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening.append(True)
    start, compiled = time.perf_counter(), _compile_seconds[0]
    yield
    _rows.append((item.nodeid, time.perf_counter() - start, _compile_seconds[0] - compiled))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the per-test wall and compile seconds (`EXPFAM_TEST_COMPILE_REPORT`).

    Under pytest-xdist each worker writes `FILE.<worker id>`; the controlling process, which
    finishes after its workers, gathers them into `FILE` (one row per test, a `worker` column).
    """
    target = os.environ.get("EXPFAM_TEST_COMPILE_REPORT")
    if not target:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    rows = [(name, f"{wall:.3f}", f"{compile_:.3f}", worker) for name, wall, compile_ in _rows]
    if worker:
        _write_report(Path(f"{target}.{worker}"), rows)
        return
    parts = sorted(Path(target).parent.glob(f"{Path(target).name}.gw*"))
    for part in parts:
        with part.open(newline="") as handle:
            rows += [tuple(row) for row in list(csv.reader(handle))[1:]]
        part.unlink()
    if rows:
        _write_report(Path(target), rows)


def _write_report(path: Path, rows: list[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["test", "wall_seconds", "compile_seconds", "worker"])
        writer.writerows(rows)
