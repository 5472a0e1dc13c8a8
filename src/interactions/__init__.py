"""Built-in interaction blocks (`xy`, `xyk`, `xk`) and block sets (`hierarchical`, `full`)."""

from interactions.xk import ClusterBias
from interactions.xy import LatentCoupling
from interactions.xyk import ClusterCoupling

__all__ = ["ClusterBias", "ClusterCoupling", "LatentCoupling"]
