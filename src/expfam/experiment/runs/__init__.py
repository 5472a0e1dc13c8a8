"""Run directories: atomic files, the layout and status, the one recorder that writes them, checkpoints,
trained runs, plots, the results table and comparisons.

| module | holds |
|---|---|
| [`atomic`][expfam.experiment.runs.atomic] | atomic writes, `RunDirectoryError`, JSON objects |
| [`layout`][expfam.experiment.runs.layout] | file names, `run.json` and the status rule `is_finished` |
| [`files`][expfam.experiment.runs.files] | parameters, configuration, metrics, `model.json`, history |
| [`lock`][expfam.experiment.runs.lock] | one writer per run directory; the `--out` checks |
| [`recorder`][expfam.experiment.runs.recorder] | the one writer of run directories (`RunRecorder`) |
| [`solo`][expfam.experiment.runs.solo] | `train_run`, `resume_run`, `evaluate_run` |
| [`group`][expfam.experiment.runs.group] | `train_group`: a stacked group into its run directories |
| [`checkpoints`][expfam.experiment.runs.checkpoints] | `checkpoint.npz` |
| [`trained`][expfam.experiment.runs.trained] | `load_run`, `TrainedRun`, `check_run_matches` |
| [`plots`][expfam.experiment.runs.plots] | a run's PNG plots |
| [`table`][expfam.experiment.runs.table] | the reference table's columns and its one cell formatter |
| [`health`][expfam.experiment.runs.health] | ELBO-floor and cluster-collapse warnings |
| [`compare`][expfam.experiment.runs.compare] | `expfam compare` |

This room imports the configuration, training and preparation ([`expfam.experiment.prepare`][expfam.experiment.prepare]),
never the sweeps ([`expfam.experiment.sweeps`][expfam.experiment.sweeps]); tests/expfam/test_layers.py checks it.
"""
