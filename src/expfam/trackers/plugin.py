"""Entry-point plugin registering the built-in trackers (the `expfam` group)."""

from __future__ import annotations

from expfam.hookspecs import hookimpl
from expfam.trackers.mlflow_tracker import MlflowTracker


@hookimpl
def expfam_trackers() -> list[type]:
    """`mlflow` (needs `pip install 'expfam[mlflow]'`)."""
    return [MlflowTracker]
