"""The experiment machinery (floor 2): configuration, training, evaluation, run directories, sweeps, reports and plots.

Everything here builds on the mathematics and the plug-in system of floor 1 ([`expfam.family`][expfam.family],
[`expfam.model`][expfam.model], [`expfam.builder`][expfam.builder], [`expfam.plugins`][expfam.plugins],
[`expfam.data`][expfam.data], [`expfam.metrics`][expfam.metrics], ...) and floor 1 never imports from here.
Import the modules themselves, e.g. `from expfam.experiment.train.loop import train`; this package's `__init__`
loads nothing so that `import expfam` stays light.
"""
