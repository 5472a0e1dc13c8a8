"""Entry-point plugin registering the built-in loss terms (docs/objectives.md)."""

from __future__ import annotations

from expfam.hookspecs import hookimpl
from objectives.conjugation import Conjugation
from objectives.elbo import Elbo
from objectives.entropy import PosteriorEntropy, PriorEntropy
from objectives.rao_blackwell import RaoBlackwellElbo
from objectives.recognition import RecognitionConjugation


@hookimpl
def expfam_objectives() -> list[object]:
    """`elbo`, `rao_blackwell_elbo`, `conjugation`, `prior_entropy`, `posterior_entropy`,
    `recognition_conjugation`."""
    return [Elbo(), RaoBlackwellElbo(), Conjugation(), PriorEntropy(), PosteriorEntropy(), RecognitionConjugation()]
