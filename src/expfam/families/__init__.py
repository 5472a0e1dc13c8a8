"""The built-in exponential families of docs/families.md."""

from expfam.families.bernoulli import Bernoulli
from expfam.families.binomial import Binomial
from expfam.families.categorical import Categorical
from expfam.families.normal import DiagonalNormal
from expfam.families.poisson import Poisson

__all__ = ["Bernoulli", "Binomial", "Categorical", "DiagonalNormal", "Poisson"]
