"""The entry-point module: one plugin of each kind."""

from __future__ import annotations

from typing import Any

from expfam.hookspecs import hookimpl
from expfam_extras.block import ScaledCoupling
from expfam_extras.dataset import Stripes
from expfam_extras.geometric import Geometric
from expfam_extras.objective import L2Penalty
from expfam_extras.tracker import JsonLinesTracker


@hookimpl
def expfam_families() -> list[type]:
    """``geometric``."""
    return [Geometric]


@hookimpl
def expfam_blocks() -> list[type]:
    """``xy_scaled``."""
    return [ScaledCoupling]


@hookimpl
def expfam_objectives() -> list[Any]:
    """``l2``."""
    return [L2Penalty()]


@hookimpl
def expfam_datasets() -> list[Any]:
    """``stripes``."""
    return [Stripes()]


@hookimpl
def expfam_trackers() -> list[type]:
    """``jsonl``."""
    return [JsonLinesTracker]
