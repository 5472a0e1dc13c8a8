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
CSV (tests/compile_report.py, with trace and compilation counts), the table behind
docs/development.md's "Where the suite's time goes".
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest
from hypothesis import settings

from compile_report import pytest_runtest_protocol, pytest_sessionfinish  # noqa: F401  (pytest's hooks)

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
    """Point this process and every subprocess at one persistent compilation cache for the run.

    Also: pytest-xdist hands out files in collection order (`HEAVY_FIRST`), and Ctrl-C reaches the processes the tests start as it would from a terminal. A background job
    of a non-interactive shell (how CI runners and `cmd &` start the suite) begins with SIGINT
    ignored, every child would inherit that, and `expfam` keeps an inherited ignore (as under
    `nohup`), so the tests that press Ctrl-C on a real process would see nothing happen.
    """
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist ≥ 3.7: keep `HEAVY_FIRST`'s order
        config.option.loadscopereorder = False
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # children start with the default
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


#: Each tier's heaviest files, heaviest first (worker-seconds in the compile report,
#: docs/development.md's "Where the suite's time goes"; a tier runs only its own tests, so one list
#: orders both). pytest-xdist's `--dist loadfile` hands out whole files in collection order as
#: workers free up, and by default reorders them by test count: a heavy file with few tests then
#: starts last and keeps one worker busy while the other idles. Collected first and kept in this
#: order, they start first, and the many light files fill the gaps at the end. Only the order
#: changes; a file missing from the list runs after them.
HEAVY_FIRST = (
    "expfam/test_docs.py",
    "expfam/test_sklearn.py",
    "cli/test_interrupts.py",
    "expfam/test_stacking.py",
    "cli/test_sweep_dask.py",
    "cli/test_fault_injection.py",
    "expfam/test_devices.py",
    "expfam/test_example_plugins.py",
    "expfam/test_training.py",
    "expfam/test_affine.py",
    "cli/test_messages.py",
    "objectives/test_joint_residuals.py",
    "expfam/test_kmeans_start.py",
    "expfam/test_trained.py",
    "expfam/test_family_identities.py",
    "expfam/test_latent_kmeans.py",
    "interactions/test_model_identities.py",
    "expfam/test_shared_posterior.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect `HEAVY_FIRST`'s files first, in its order; every other file keeps its place after them."""
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}
    tests = Path(__file__).parent

    def heaviness(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(tests).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=heaviness)  # stable: within a file, and among the others, the order is kept


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the cache folder this session made (a folder given by the user is kept)."""
    for folder in _made_cache:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("EXPFAM_TEST_JAX_CACHE") == folder:
            del os.environ["EXPFAM_TEST_JAX_CACHE"]
    _made_cache.clear()


#: Drop the compiled programs when the process holds more than this fraction of the kernel's
#: limit on memory mappings (`/proc/sys/vm/max_map_count`, 65530 by default) or of the machine's memory.
_PRESSURE_FRACTION = 0.5


def _under_pressure() -> bool:
    """Whether this process's memory mappings or resident memory pass `_PRESSURE_FRACTION` of the limit.

    `True` where the figures cannot be read (no `/proc`: not Linux), so the caller clears as a
    precaution, as the suite did after every module before.
    """
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            mappings = sum(1 for _ in maps)
        status = Path("/proc/self/status").read_text().split("\n")
        meminfo = Path("/proc/meminfo").read_text().split("\n")
        resident = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        total = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, ValueError, StopIteration, IndexError):
        return True
    return mappings > _PRESSURE_FRACTION * limit or resident > _PRESSURE_FRACTION * total


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs() -> Iterator[None]:
    """After a test module, drop the in-memory compiled programs if the process runs short of room.

    One process compiles thousands of programs over the suite; keeping all of them alive once
    exhausted the process's memory mappings (the CPU backend maps each program's code) and
    crashed XLA's compiler late in the run. Clearing after *every* module, though, made each
    later module trace and lower again every program it shared with an earlier one (the
    persistent cache spares only XLA's compile, and most of a small program's cost is the
    tracing and lowering). So the programs are dropped only when the process holds more than
    half its limit of memory mappings, or more than half the machine's memory, checked after
    each module; where `/proc` cannot be read the programs are dropped after every module, as
    before. Dropped programs are loaded back from the run's persistent cache when needed.
    """
    yield
    if _under_pressure():
        jax.clear_caches()


# ================================================================ built once per run: trained runs, installed examples
# Artefacts that many tests read (a trained run, the example plugin packages installed into a
# folder) are built once per test run, not once per module, and shared by every pytest-xdist
# worker: the first worker to ask builds under a file lock, the others wait and read it.
# Tests read them as they are; a test that changes one works on a copy (`shutil.copytree`).
import json  # noqa: E402  (this section is kept apart from the session set-up above)
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

try:
    import fcntl
except ImportError:  # no POSIX file locks (Windows): each worker builds its own copy
    fcntl = None  # type: ignore[assignment]

_REPOSITORY = Path(__file__).resolve().parents[1]


def _run_wide_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every worker of this test run sees: the parent of a pytest-xdist worker's base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") and fcntl is not None else base


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, made by `build(folder)` once per test run whichever worker asks first.

    A worker that asks while another builds waits on the lock and then reads the finished
    folder; a build that failed leaves no `.done` mark, so the next worker to ask builds again
    (and meets the same error, in its own test).
    """
    root = _run_wide_folder(tmp_path_factory) / "built-once"
    root.mkdir(exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


# ----------------------------------------------------------------- the example plugin packages, installed once
def example_packages() -> list[Path]:
    """Every example package under examples/ (a folder with a pyproject.toml), whatever plugins it holds."""
    return sorted(path.parent for path in (_REPOSITORY / "examples").glob("*/pyproject.toml"))


def pip_install_command(sources: list[Path], target: Path) -> list[str]:
    """`pip install --no-deps --target` of `sources`; offline (no build isolation) when setuptools can build here.

    Without setuptools (≥ 70.1, or older with `wheel`) in this environment, pip builds in an
    isolated environment and fetches setuptools from the index.
    """
    import importlib.util

    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    try:
        import setuptools
    except ImportError:
        return [*command, *map(str, sources)]
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    if version >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        command.append("--no-build-isolation")
    return [*command, *map(str, sources)]


@pytest.fixture(scope="session")
def example_plugins_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with every example package of examples/ pip-installed into it (`--target`), once per run.

    Put it first on `PYTHONPATH` (`example_plugins_environment`) and a fresh interpreter finds the
    packages' `expfam` entry points, as after `pip install ./examples/NAME`; nothing is
    installed into the test environment. Read-only.
    """

    def install(folder: Path) -> None:
        sources = []
        for package in example_packages():  # built from copies: pip writes build/ and *.egg-info next to them
            source = folder / "sources" / package.name
            shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            sources.append(source)
        command = pip_install_command(sources, folder / "site")
        installed = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert installed.returncode == 0, installed.stdout + installed.stderr

    return build_once(tmp_path_factory, "example-plugins", install) / "site"


@pytest.fixture()
def example_plugins_environment(example_plugins_site: Path) -> dict[str, str]:
    """This process's environment with `example_plugins_site` first on `PYTHONPATH`, for a subprocess (a fresh copy)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(example_plugins_site), environment.get("PYTHONPATH", "")])
    return environment


# ----------------------------------------------------------------- the small digits run: in process and by `expfam train`
#: A short run that learns something on digits in a few hundred steps. The same configuration and
#: seed is trained once in the test process (`small_run`) and once by a real `expfam train`
#: process (`small_run_by_cli`): the two are compared, so same-seed determinism is checked across
#: the process boundary on these artefacts instead of by training a third time.
SMALL_RUN: dict[str, dict[str, object]] = {
    "model": {"n_latent": 8, "n_clusters": 10},
    "train": {
        "n_steps": 300,
        "log_every": 100,
        "batch_size": 64,
        "n_mc_samples": 4,
        "n_conj_samples": 128,
        "kl_warmup_steps": 200,
        "conj_warmup_steps": 100,
        "lr_warmup_steps": 50,
    },
    "evaluate": {"n_r2_samples": 500, "n_iwae_samples": 5, "batch_size": 400},
}


def _config_maker(base: dict[str, dict[str, object]]) -> Callable[..., object]:
    """`make(**sections)`: the `RunConfig` of `base` with `sections`' keys replaced."""
    from expfam.experiment.config import config_from_mapping

    def make(**sections: dict[str, object]) -> object:
        mapping = {name: dict(values) for name, values in base.items()}
        for name, values in sections.items():
            mapping.setdefault(name, {}).update(values)
        return config_from_mapping(mapping)

    return make


def train_once(tmp_path_factory: pytest.TempPathFactory, name: str, config: object, **options: object) -> dict:
    """`train_run(config, FOLDER/run, **options)` once per test run: `{config, out, metrics, progress, log}`.

    `progress` holds the progress callback's `(step, n_steps, row)` events, `log` the log lines.
    """
    from expfam.experiment.runs.solo import train_run

    def train(folder: Path) -> None:
        progress: list[tuple[object, ...]] = []
        log: list[str] = []
        hooks = {"progress": lambda *event: progress.append(event), "log": log.append}
        metrics = train_run(config, folder / "run", **hooks, **options)
        events = {"metrics": metrics, "progress": progress, "log": log}
        (folder / "events.json").write_text(json.dumps(events, default=float))

    folder = build_once(tmp_path_factory, name, train)
    events = json.loads((folder / "events.json").read_text())
    progress = [tuple(event) for event in events["progress"]]
    return {
        "config": config,
        "out": folder / "run",
        "metrics": events["metrics"],
        "progress": progress,
        "log": events["log"],
    }


@pytest.fixture(scope="session")
def small_config() -> Callable[..., object]:
    """`small_config(**sections)`: the small run's `RunConfig`, with `sections`' keys replaced."""
    return _config_maker(SMALL_RUN)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, small_config: Callable[..., object]) -> dict:
    """The small run trained by `train_run` in a test process, with plots: `{config, out, metrics, progress, log}`."""
    return train_once(tmp_path_factory, "small-run", small_config())


def expfam_command() -> list[str]:
    """The installed `expfam` script next to this interpreter, or `python -m cli.app`."""
    script = Path(sys.executable).with_name("expfam")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cli.app"]


def small_run_flags() -> list[str]:
    """The small run's [model] and [train] keys as `expfam train` flags (`--n-latent 8 ...`)."""
    return [
        item
        for section in ("model", "train")
        for key, value in SMALL_RUN[section].items()
        for item in (f"--{key.replace('_', '-')}", str(value))
    ]


@pytest.fixture(scope="session")
def small_run_by_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`expfam train FLAGS --config EVALUATE.toml --out DIR/small` as a real process, no TTY: `(DIR/small, result)`.

    The flags carry the small run's [model] and [train] keys, the file its [evaluate] section.
    The test session runs in float64, so does the process.
    """
    evaluate = "".join(f"{key} = {value}\n" for key, value in SMALL_RUN["evaluate"].items())

    def train(folder: Path) -> None:
        (folder / "evaluate.toml").write_text(f"[evaluate]\n{evaluate}")
        command = [*expfam_command(), "train", *small_run_flags(), "--config", str(folder / "evaluate.toml")]
        result = subprocess.run(
            [*command, "--out", str(folder / "small")],
            capture_output=True,
            text=True,
            env={**os.environ, "JAX_ENABLE_X64": "1"},
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        (folder / "stdout.txt").write_text(result.stdout)
        (folder / "stderr.txt").write_text(result.stderr)

    folder = build_once(tmp_path_factory, "small-run-by-cli", train)
    stdout, stderr = (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text()
    return folder / "small", subprocess.CompletedProcess(["expfam", "train"], 0, stdout, stderr)


# ----------------------------------------------------------------- a tiny digits run with a checkpoint every step
#: Forty steps on digits, 4 latent units and 5 clusters, a checkpoint at every report: enough to
#: learn something (its NMI is above 0), small enough to train in seconds.
TINY_DIGITS_RUN: dict[str, dict[str, object]] = {
    "model": {"n_latent": 4, "n_clusters": 5},
    "train": {
        "n_steps": 40,
        "log_every": 10,
        "batch_size": 32,
        "n_mc_samples": 2,
        "n_conj_samples": 64,
        "kl_warmup_steps": 20,
        "conj_warmup_steps": 10,
        "lr_warmup_steps": 5,
        "checkpoint_every": 1,
    },
    "evaluate": {"n_r2_samples": 200, "n_elbo_samples": 2, "n_iwae_samples": 4, "batch_size": 400},
}


@pytest.fixture(scope="session")
def tiny_digits_config() -> Callable[..., object]:
    """`tiny_digits_config(**sections)`: the tiny digits run's `RunConfig`, with `sections`' keys replaced."""
    return _config_maker(TINY_DIGITS_RUN)


@pytest.fixture(scope="session")
def tiny_digits_run(tmp_path_factory: pytest.TempPathFactory, tiny_digits_config: Callable[..., object]) -> dict:
    """The tiny digits run trained by `train_run` without plots, once per test run (read-only; copy to change it)."""
    return train_once(tmp_path_factory, "tiny-digits-run", tiny_digits_config(), plots=False)
