"""Built-in loss-term plugins of MODEL.md §6."""

from objectives.conjugation import Conjugation
from objectives.elbo import Elbo
from objectives.entropy import PosteriorEntropy, PriorEntropy
from objectives.rao_blackwell import RaoBlackwellElbo
from objectives.recognition import RecognitionConjugation

__all__ = ["Conjugation", "Elbo", "PosteriorEntropy", "PriorEntropy", "RaoBlackwellElbo", "RecognitionConjugation"]
