"""Sweeps: the sweep file, the plan of stacked groups, running the trials, their results, the report and plots.

| module | holds |
|---|---|
| [`spec`][expfam.experiment.sweeps.spec] | the sweep file: `SweepSpec`, `Trial`, `load_sweep` |
| [`plan`][expfam.experiment.sweeps.plan] | which trials stack: `plan_groups` |
| [`run`][expfam.experiment.sweeps.run] | `run_sweep`: trials into run directories, resumably |
| [`workers`][expfam.experiment.sweeps.workers] | units of work, here or in worker processes |
| [`results`][expfam.experiment.sweeps.results] | `TrialResult`, repeated seeds summarised |
| [`report`][expfam.experiment.sweeps.report] | `report.md` and `results.csv` |
| [`plots`][expfam.experiment.sweeps.plots] | the sweep's plots |

A sweep writes run directories only through [`expfam.experiment.runs`][expfam.experiment.runs] (its one
recorder); nothing below the sweeps imports them.
"""
