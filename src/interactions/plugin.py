"""Entry-point plugin registering the built-in blocks and block sets (docs/blocks.md)."""

from __future__ import annotations

from expfam.hookspecs import hookimpl
from interactions.xk import ClusterBias
from interactions.xy import LatentCoupling
from interactions.xyk import ClusterCoupling

BLOCK_SETS: dict[str, tuple[str, ...]] = {
    "hierarchical": ("xy",),
    "full": ("xy", "xyk", "xk"),
}


@hookimpl
def expfam_blocks() -> list[type]:
    """`xy` (X↔Y), `xyk` (X↔Y per cluster) and `xk` (X↔K)."""
    return [LatentCoupling, ClusterCoupling, ClusterBias]


@hookimpl
def expfam_block_sets() -> dict[str, tuple[str, ...]]:
    """`hierarchical` = (xy); `full` = (xy, xyk, xk)."""
    return dict(BLOCK_SETS)
