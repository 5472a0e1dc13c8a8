r"""The `dask` executor: a sweep's groups as tasks on a Dask distributed cluster (the `expfam[dask]` extra).

Each unit (one stacked group, or one trial with `--no-stack`) is one task. Its worker trains it into a
temporary folder of its own and returns the trials' outcomes and files
([`attempt_elsewhere`][expfam.experiment.sweeps.remote.attempt_elsewhere]); the sweep's process writes them into
the sweep folder, so the cluster needs no shared file system and a worker never writes the sweep folder.

Options (`[executor]` in the sweep file, the `expfam sweep` flags, or `executor_options` of
[`run_sweep`][expfam.experiment.sweeps.run.run_sweep]):

- `scheduler`: the scheduler's address (`tcp://host:8786`, `tls://host:8786`) or, from Python, a
  `distributed.Client`. Without it a `LocalCluster` of `jobs` worker processes (one thread each) is started
  on this machine and stopped at the end.
- `tls_ca_file`, `tls_cert`, `tls_key`: the certificate files of a `tls://` scheduler (or, from Python,
  `security`: a `distributed.Security`). The `LocalCluster` listens on 127.0.0.1 without TLS.
- `retries`: how many times a group whose worker died (killed, out of memory, cut off) is started again on
  another worker (the scheduler's `allowed-failures`; default 3). A group that fails by itself (divergence,
  bad input) is recorded as failed and not retried.
- `wait_for_workers`: seconds to wait for a first worker to join (default 60).

A group asks for one `GPU` resource when the cluster's workers offer `GPU` resources (`dask worker
--resources GPU=1`), so one group runs per device; a group whose memory estimate
([`estimated_bytes`][expfam.experiment.prepare.estimated_bytes], times its size) exceeds every worker's memory
limit is refused before any task is submitted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expfam.errors import ConfigurationError
from expfam.experiment.sweeps.executor import Announce, ExecutorLostError, Finished, UnitResult, refuse_options

if TYPE_CHECKING:  # imported when a sweep runs: the plugin module stays light
    from expfam.experiment.sweeps.workers import Unit

#: What to install for this executor (the CLI prints it and exits 2 when `distributed` is missing).
INSTALL_HINT = "pip install 'expfam[dask]'"
OPTIONS: tuple[str, ...] = (
    "scheduler",
    "tls_ca_file",
    "tls_cert",
    "tls_key",
    "security",
    "retries",
    "wait_for_workers",
)
DEFAULT_RETRIES = 3


def require_distributed() -> Any:
    """The `distributed` module, or an error saying what to install.

    Raises:
        ConfigurationError: `distributed` is not installed (the message is the pip command).
    """
    try:
        import distributed
    except ImportError:
        raise ConfigurationError(
            f"the dask executor needs Dask distributed, which is not installed: {INSTALL_HINT}",
            offending="dask",
        ) from None
    return distributed


def _train_on_worker(unit: Unit) -> UnitResult:
    """The task: train `unit` on this worker, returning its outcomes and files (never writing the sweep folder)."""
    from distributed import get_worker

    from expfam.experiment.sweeps.remote import attempt_elsewhere

    try:
        worker = get_worker()
        name = str(worker.name) if str(worker.name) != worker.address else worker.address
    except ValueError:  # not on a worker (a client-side test run)
        name = "?"
    return attempt_elsewhere(unit, worker=name)


def _security(distributed: Any, options: Mapping[str, Any]) -> Any:
    """The `distributed.Security` of the options, or `None` for plain `tcp://`."""
    if options.get("security") is not None:
        return options["security"]
    files = {key: options.get(key) for key in ("tls_ca_file", "tls_cert", "tls_key")}
    scheduler = options.get("scheduler")
    wants_tls = isinstance(scheduler, str) and scheduler.startswith("tls://")
    if not any(files.values()):
        if wants_tls:
            raise ConfigurationError(
                f"scheduler {scheduler!r} uses TLS but no certificates were given; pass --tls-ca-file, "
                "--tls-cert and --tls-key (or tls_ca_file, tls_cert and tls_key under [executor])",
                offending="tls_cert",
            )
        return None
    for key, value in files.items():
        if not value:
            raise ConfigurationError(
                f"TLS needs all three of tls_ca_file, tls_cert and tls_key; {key} is missing", offending=key
            )
        if not Path(str(value)).expanduser().is_file():
            raise ConfigurationError(f"{key} {str(value)!r} is not a file; give the path of a PEM file", offending=key)
    ca, cert, key = (str(Path(str(files[k])).expanduser()) for k in ("tls_ca_file", "tls_cert", "tls_key"))
    return distributed.Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


def _retries(options: Mapping[str, Any]) -> int | None:
    value = options.get("retries")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"retries must be an integer ≥ 0, got {value!r}", offending="retries")
    return value


@contextlib.contextmanager
def _client(distributed: Any, options: Mapping[str, Any], jobs: int) -> Iterator[tuple[Any, str]]:
    """A connected client and a description of where it is; closes what it opened."""
    scheduler = options.get("scheduler")
    security = _security(distributed, options)
    retries = _retries(options)
    if scheduler is not None and not isinstance(scheduler, str):  # a Client from Python: the caller owns it
        if retries is not None:
            scheduler.run_on_scheduler(_set_allowed_failures, retries=retries)
        yield scheduler, str(scheduler.scheduler.address)
        return
    if scheduler is None:
        failures = DEFAULT_RETRIES if retries is None else retries
        import dask.config

        with dask.config.set({"distributed.scheduler.allowed-failures": failures}):
            cluster = distributed.LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # this machine only
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        with cluster, distributed.Client(cluster) as client:
            yield client, f"a local cluster of {jobs} worker processes"
        return
    try:
        client = distributed.Client(scheduler, security=security, timeout=30)
    except (OSError, TimeoutError) as error:
        raise ExecutorLostError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(error).__name__}: {error}); start it "
            "(`dask scheduler`) or check --scheduler and the TLS files",
            offending=scheduler,
        ) from None
    try:
        if retries is not None:
            client.run_on_scheduler(_set_allowed_failures, retries=retries)
        yield client, scheduler
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def _set_allowed_failures(dask_scheduler: Any, retries: int) -> None:
    dask_scheduler.allowed_failures = retries


def _unit_label(unit: Unit) -> str:
    first, last = unit.trials[0].name, unit.trials[-1].name
    return first if len(unit.trials) == 1 else f"the stacked group {first}–{last}"


def check_worker_memory(units: Sequence[Unit], workers: Mapping[str, Any]) -> None:
    """Refuse a unit whose memory estimate exceeds every worker's memory limit, before anything is submitted.

    Raises:
        ConfigurationError: one line naming the unit, its estimate and the largest worker limit.
    """
    limits = [int(info.get("memory_limit") or 0) for info in workers.values()]
    if not limits or 0 in limits:  # a worker without a limit can take anything
        return
    from expfam.experiment.prepare import Preparer, estimated_bytes, parameter_shapes

    largest = max(limits)
    preparer = Preparer(memory=False)
    for unit in units:
        prepared = preparer.prepare(unit.trials[0].config)
        one, _ = estimated_bytes(prepared.config, prepared.split.n_features, parameter_shapes(prepared.model))
        needed = one * len(unit.trials)
        if needed > largest:
            raise ConfigurationError(
                f"{_unit_label(unit)} needs at least {needed / 2**30:.3g} GiB, more than the largest worker memory "
                f"limit of the cluster ({largest / 2**30:.3g} GiB); give the workers more memory (--memory-limit), "
                "stack fewer trials (--stack N) or lower the sizes",
                offending=unit.trials[0].name,
            )


class DaskExecutor:
    """Groups as tasks on a Dask distributed cluster; see the module's description for the options."""

    name = "dask"
    description = "a Dask distributed cluster (--scheduler ADDRESS, or a local one); needs expfam[dask]"
    remote = True

    def check(self, options: Mapping[str, Any]) -> None:
        """Refuse unknown options, a `tls://` address without certificates, bad `retries`, or a missing extra."""
        refuse_options(self.name, options, OPTIONS)
        distributed = require_distributed()
        _security(distributed, options)
        _retries(options)

    def run(
        self,
        units: Sequence[Unit],
        *,
        jobs: int,
        options: Mapping[str, Any],
        announce: Announce,
        finished: Finished,
    ) -> None:
        """Submit every unit, then report each as it ends; see [`Executor.run`][expfam.experiment.sweeps.executor.Executor.run].

        Raises:
            ConfigurationError: `distributed` missing, bad options, or a unit too large for every worker.
            ExecutorLostError: the scheduler cannot be reached or went away (finished units are kept).
            KeyboardInterrupt: after cancelling the submitted tasks.
        """
        self.check(options)
        distributed = require_distributed()
        with _client(distributed, options, jobs) as (client, where):
            try:
                client.wait_for_workers(1, timeout=float(options.get("wait_for_workers", 60)))
            except (TimeoutError, OSError):
                raise ExecutorLostError(
                    f"no Dask worker joined the scheduler at {where} in time; start workers with `dask worker {where}`",
                    offending=where,
                ) from None
            try:
                workers = client.scheduler_info(n_workers=-1).get("workers", {})  # every worker, not the first 5
            except TypeError:  # distributed before 2025 lists every worker and takes no n_workers
                workers = client.scheduler_info().get("workers", {})
            check_worker_memory(units, workers)
            gpus = any((info.get("resources") or {}).get("GPU") for info in workers.values())
            from expfam.experiment.sweeps.remote import with_absolute_data

            futures: dict[Any, int] = {}
            for index, unit in enumerate(units):
                announce(index, "queued")
                future = client.submit(
                    _train_on_worker, with_absolute_data(unit), pure=False, resources={"GPU": 1} if gpus else None
                )
                futures[future] = index
            try:
                self._collect(distributed, futures, units, finished, where)
            except BaseException:
                with contextlib.suppress(Exception):
                    client.cancel(list(futures), force=True)
                raise

    @staticmethod
    def _collect(
        distributed: Any, futures: Mapping[Any, int], units: Sequence[Unit], finished: Finished, where: str
    ) -> None:
        reported = 0
        with _quiet_client_log():
            for future in distributed.as_completed(list(futures)):
                index = futures[future]
                if future.cancelled():  # not by us: the connection to the scheduler is gone
                    kept = f"the {reported} trials that finished are kept" if reported else "no trial had finished"
                    raise ExecutorLostError(
                        f"lost the Dask scheduler at {where}; {kept}: start a scheduler and workers, then rerun "
                        "the same command to train the rest",
                        offending=where,
                    )
                try:
                    result = future.result()
                except distributed.KilledWorker as error:  # its workers died every time: a rerun retries it
                    result = _failed(units[index], f"its worker died each time it was started ({error})")
                except Exception as error:  # it could not run at all (say expfam is missing on the worker)
                    result = _failed(units[index], f"the task failed on the cluster: {type(error).__name__}: {error}")
                finished(index, result)
                reported += len(units[index].trials)


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """Keep the client's reconnection traceback off the terminal: a lost scheduler is reported in one line."""
    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _failed(unit: Unit, message: str) -> UnitResult:
    from expfam.experiment.sweeps.results import FAILED

    message = " ".join(message.split())
    return UnitResult(tuple((FAILED, None, message, "", float("nan")) for _ in unit.trials), None)


__all__ = ["INSTALL_HINT", "DaskExecutor", "check_worker_memory", "require_distributed"]
