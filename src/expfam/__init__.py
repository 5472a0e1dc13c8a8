"""expfam: exponential-family latent-variable models in JAX.

Families, interaction blocks, loss terms and datasets are plugins registered
through the `expfam` entry-point group and looked up by name in a
[`Registry`][expfam.plugins.Registry].
"""

from typing import TYPE_CHECKING, Any

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
from expfam.plugins import Registry, build_registry, get_registry

__version__ = "0.1.0"

if TYPE_CHECKING:
    from expfam.family import ExponentialFamily
    from expfam.mixture import LatentMixture

#: Names served lazily, so `import expfam` does not import JAX: the command line sets its
#: signal handlers first ([`expfam.interrupts`][expfam.interrupts]). Only floor-1 names: a trained run is
#: `from expfam.experiment import load_run` (floor 2).
_LAZY = {
    "ExponentialFamily": "expfam.family",
    "LatentMixture": "expfam.mixture",
}
#: Floor-2 names `expfam` once served (see CHANGELOG.md): where they are now.
_MOVED = {
    "load_run": "use `from expfam.experiment import load_run`",
    "TrainedRun": "use `from expfam.experiment import TrainedRun`",
}


def __getattr__(name: str) -> Any:
    """`expfam.ExponentialFamily` and `expfam.LatentMixture`, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MOVED:
        raise AttributeError(f"module 'expfam' has no attribute {name!r}; it is floor 2: {_MOVED[name]}")
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
    "TrainingDivergedError",
    "UnknownNameError",
    "build_registry",
    "get_registry",
]
