"""The entry-point module: registers the ``xy_gated`` block and the ``gated`` block set."""

from __future__ import annotations

from expfam.hookspecs import hookimpl
from gated_block.block import GatedCoupling


@hookimpl
def expfam_blocks() -> list[type]:
    """``xy_gated``."""
    return [GatedCoupling]


@hookimpl
def expfam_block_sets() -> dict[str, tuple[str, ...]]:
    """``gated`` = (xy, xy_gated): a shared X↔Y matrix plus one more for the non-reference clusters."""
    return {"gated": ("xy", "xy_gated")}
