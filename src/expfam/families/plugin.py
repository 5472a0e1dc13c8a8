"""Entry-point plugin registering the built-in families (the `expfam` group)."""

from __future__ import annotations

from expfam.families import Bernoulli, Binomial, Categorical, DiagonalNormal, Poisson
from expfam.hookspecs import hookimpl


@hookimpl
def expfam_families() -> list[type]:
    """The five families of docs/families.md."""
    return [Bernoulli, Binomial, Poisson, Categorical, DiagonalNormal]
