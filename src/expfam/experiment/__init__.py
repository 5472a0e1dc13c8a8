"""The experiment machinery (floor 2): configuration, training, preparation, run directories and sweeps.

Everything here builds on the mathematics and the plug-in system of floor 1 ([`expfam.family`][expfam.family],
[`expfam.model`][expfam.model], [`expfam.builder`][expfam.builder], [`expfam.plugins`][expfam.plugins],
[`expfam.data`][expfam.data], [`expfam.metrics`][expfam.metrics], ...) and floor 1 never imports from here.
The rooms, each importing only the ones before it (tests/expfam/test_layers.py):

1. configuration: [`expfam.experiment.config`][expfam.experiment.config] and
   [`expfam.experiment.config_text`][expfam.experiment.config_text];
2. training and evaluation: [`expfam.experiment.train`][expfam.experiment.train] (one loop for one trial or a
   stacked group, [`expfam.experiment.train.loop`][expfam.experiment.train.loop]),
   [`expfam.experiment.evaluation`][expfam.experiment.evaluation], [`expfam.experiment.usage`][expfam.experiment.usage];
3. preparation and checks, with the one model spec: [`expfam.experiment.prepare`][expfam.experiment.prepare];
4. run directories: [`expfam.experiment.runs`][expfam.experiment.runs];
5. sweeps: [`expfam.experiment.sweeps`][expfam.experiment.sweeps].

`from expfam.experiment import load_run` gives [`load_run`][expfam.experiment.runs.trained.load_run] (and
`TrainedRun`), imported on first use so that importing a room loads only that room.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expfam.experiment.runs.trained import TrainedRun, load_run

#: Names served on first use: `load_run` and `TrainedRun` import JAX and the run-directory room.
_LAZY = {"load_run": "expfam.experiment.runs.trained", "TrainedRun": "expfam.experiment.runs.trained"}


def __getattr__(name: str) -> Any:
    """`expfam.experiment.load_run` and `expfam.experiment.TrainedRun`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'expfam.experiment' has no attribute {name!r}")


__all__ = ["TrainedRun", "load_run"]
