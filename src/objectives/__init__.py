"""Built-in loss-term plugins of docs/objectives.md."""

from objectives.conjugation import Conjugation
from objectives.elbo import Elbo
from objectives.entropy import PosteriorEntropy, PriorEntropy
from objectives.rao_blackwell import RaoBlackwellElbo
from objectives.recognition import RecognitionConjugation

__all__ = ["Conjugation", "Elbo", "PosteriorEntropy", "PriorEntropy", "RaoBlackwellElbo", "RecognitionConjugation"]
