"""The compile report: per test, its wall time and the compile work JAX did in the test process.

`EXPFAM_TEST_COMPILE_REPORT=FILE` writes, per test (setup, call and teardown), its wall time, the
seconds JAX spent tracing, lowering and compiling (`jax.monitoring` duration events), the number
of traces, lowerings and backend compilations, and how many of those compilations were loaded from
the run's persistent cache, as a CSV: the table behind docs/development.md's "Where the suite's
time goes". The counts do not depend on how loaded the machine is; the seconds do. The hooks are
pytest's, imported into tests/conftest.py.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
#: Running totals: compile seconds, then one count per `_COMPILE_EVENTS` entry, then persistent-cache hits.
_totals = [0.0, 0, 0, 0, 0]
_listening: list[bool] = []
_rows: list[tuple[object, ...]] = []
_REPORT_COLUMNS = ["test", "wall_seconds", "compile_seconds", "traces", "lowerings", "backend_compiles", "cache_hits"]


def _on_duration(event: str, seconds: float, **_: object) -> None:
    if event in _COMPILE_EVENTS:
        _totals[0] += seconds
        _totals[1 + _COMPILE_EVENTS.index(event)] += 1


def _on_event(event: str, **_: object) -> None:
    if event == _CACHE_HIT_EVENT:
        _totals[4] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With `EXPFAM_TEST_COMPILE_REPORT`, time each test (setup, call, teardown) and count its compile work.

    Per test: the seconds spent tracing, lowering and compiling, the number of traces,
    lowerings and backend compilations, and how many of those compilations were loaded from
    the run's persistent cache (`backend_compiles - cache_hits` programs were compiled by XLA).
    """
    if not os.environ.get("EXPFAM_TEST_COMPILE_REPORT"):
        yield
        return
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        jax.monitoring.register_event_listener(_on_event)
        _listening.append(True)
    start, before = time.perf_counter(), list(_totals)
    yield
    seconds, *counts = (after - earlier for after, earlier in zip(_totals, before, strict=True))
    _rows.append((item.nodeid, f"{time.perf_counter() - start:.3f}", f"{seconds:.3f}", *counts))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the per-test wall and compile figures (`EXPFAM_TEST_COMPILE_REPORT`).

    Under pytest-xdist each worker writes `FILE.<worker id>`; the controlling process, which
    finishes after its workers, gathers them into `FILE` (one row per test, a `worker` column).
    """
    target = os.environ.get("EXPFAM_TEST_COMPILE_REPORT")
    if not target:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    rows: list[tuple[object, ...]] = [(*row, worker) for row in _rows]
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


def _write_report(path: Path, rows: list[tuple[object, ...]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*_REPORT_COLUMNS, "worker"])
        writer.writerows(rows)
