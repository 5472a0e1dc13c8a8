"""Entry-point plugin registering the built-in loss terms (docs/objectives.md)."""

from __future__ import annotations

from expfam.hookspecs import hookimpl
from objectives.conjugation import Conjugation
from objectives.elbo import Elbo
from objectives.entropy import PosteriorEntropy, PriorEntropy
from objectives.recognition import RecognitionConjugation


@hookimpl
def expfam_objectives() -> list[object]:
    """``elbo``, ``conjugation``, ``prior_entropy``, ``posterior_entropy``, ``recognition_conjugation``."""
    return [Elbo(), Conjugation(), PriorEntropy(), PosteriorEntropy(), RecognitionConjugation()]
