"""Entry-point plugin registering the built-in sweep executors (the `expfam` group): `local` and `dask`."""

from __future__ import annotations

from expfam.experiment.sweeps.dask_executor import DaskExecutor
from expfam.experiment.sweeps.executor import Executor, LocalExecutor
from expfam.hookspecs import hookimpl


@hookimpl
def expfam_executors() -> list[Executor]:
    """`local` (this machine's processes, the default) and `dask` (a Dask cluster; needs `expfam[dask]`)."""
    return [LocalExecutor(), DaskExecutor()]
