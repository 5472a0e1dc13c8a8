"""Sweeps: the sweep file, the plan of stacked groups, running the trials, their results, the report and plots.

| module | holds |
|---|---|
| [`spec`][expfam.experiment.sweeps.spec] | the sweep file: `SweepSpec`, `Trial`, `load_sweep` |
| [`plan`][expfam.experiment.sweeps.plan] | which trials stack: `plan_groups` |
| [`run`][expfam.experiment.sweeps.run] | `run_sweep`: trials into run directories, resumably |
| [`workers`][expfam.experiment.sweeps.workers] | units of work, here or in worker processes |
| [`executor`][expfam.experiment.sweeps.executor] | executors (a plugin kind): the protocol, `local` |
| [`remote`][expfam.experiment.sweeps.remote] | units trained elsewhere: their files, written by the sweep |
| [`dask_executor`][expfam.experiment.sweeps.dask_executor] | `dask`: groups as tasks on a Dask cluster |
| [`executor_plugin`][expfam.experiment.sweeps.executor_plugin] | the entry point registering `local` and `dask` |
| [`results`][expfam.experiment.sweeps.results] | `TrialResult`, repeated seeds summarised |
| [`report`][expfam.experiment.sweeps.report] | `report.md` and `results.csv` |
| [`plots`][expfam.experiment.sweeps.plots] | the sweep's plots |

A sweep writes run directories only through [`expfam.experiment.runs`][expfam.experiment.runs] (its one
recorder); nothing below the sweeps imports them.
"""
