"""expfam: exponential-family latent-variable models in JAX.

Families, interaction blocks, loss terms and datasets are plugins registered
through the `expfam` entry-point group and looked up by name in a
[`Registry`][expfam.plugins.Registry].
"""

from typing import Any

from expfam.errors import (
    ConfigurationError,
    DataError,
    DuplicateNameError,
    ExpfamError,
    ShapeError,
    SupportError,
    TrainingDivergedError,
    UnknownNameError,
)
from expfam.family import ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.plugins import Registry, build_registry, get_registry

__version__ = "0.1.0"

#: Names served lazily from the experiment machinery (floor 2), so `import expfam` stays light.
_LAZY = {"load_run": "expfam.experiment.trained", "TrainedRun": "expfam.experiment.trained"}


def __getattr__(name: str) -> Any:
    """`expfam.load_run` and `expfam.TrainedRun`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'expfam' has no attribute {name!r}")


__all__ = [
    "ConfigurationError",
    "DataError",
    "DuplicateNameError",
    "ExpfamError",
    "ExponentialFamily",
    "LatentMixture",
    "Registry",
    "ShapeError",
    "SupportError",
    "TrainedRun",
    "TrainingDivergedError",
    "UnknownNameError",
    "build_registry",
    "get_registry",
    "load_run",
]
