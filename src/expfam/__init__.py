"""expfam: exponential-family latent-variable models in JAX.

Families, interaction blocks, loss terms and datasets are plugins registered
through the ``expfam`` entry-point group and looked up by name in a
:class:`~expfam.plugins.Registry`.
"""

from expfam.errors import (
    ConfigurationError,
    DataError,
    DuplicateNameError,
    ExpfamError,
    SupportError,
    TrainingDivergedError,
    UnknownNameError,
)
from expfam.family import ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.plugins import Registry, build_registry, get_registry

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DataError",
    "DuplicateNameError",
    "ExpfamError",
    "ExponentialFamily",
    "LatentMixture",
    "Registry",
    "SupportError",
    "TrainingDivergedError",
    "UnknownNameError",
    "build_registry",
    "get_registry",
]
