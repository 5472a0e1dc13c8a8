"""Error types of expfam.

Every error is a `ValueError` subclass so that callers who only know
"bad input" can catch one type; each message says what was found, what was
expected, and how to fix it.
"""

from __future__ import annotations

from typing import Any


class ExpfamError(ValueError):
    """Base class of all expfam errors.

    Args:
        message: what was found, what was expected, and the fix.
        offending: the object the error is about (a name, a value, a plugin).
    """

    def __init__(self, message: str, *, offending: Any = None) -> None:
        super().__init__(message)
        self.offending = offending


class UnknownNameError(ExpfamError, KeyError):
    """A name was looked up that no plugin registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DuplicateNameError(ExpfamError):
    """Two plugins registered the same name for the same kind of component."""


class SupportError(ExpfamError):
    """Data lies outside the support of a family."""


class ShapeError(ExpfamError):
    """Observations whose trailing shape does not match the family or model they are given to."""


class ConfigurationError(ExpfamError):
    """A model, training or sweep configuration is invalid."""


class DataError(ExpfamError):
    """A data file is missing, malformed, or does not match what was asked."""


class RunFailedError(ExpfamError):
    """The inputs were fine but the run failed (the command exits 1, not 2)."""


class RunWriteError(RunFailedError):
    """A run file could not be written (disk full, file size limit, permissions changed mid-run)."""


class TrainingDivergedError(RunFailedError):
    """Training produced NaN or inf; carries the step and the offending term."""

    def __init__(self, message: str, *, step: int, term: str, last_params: Any = None) -> None:
        super().__init__(message, offending=term)
        self.step = step
        self.term = term
        self.last_params = last_params


class PluginLoadError(ExpfamError):
    """One of expfam's own plugins (its families, blocks, loss terms or datasets) could not be loaded."""


class ExpfamWarning(UserWarning):
    """Base class of expfam's warnings (the command line prints each once as `warning: ...`)."""


class PluginWarning(ExpfamWarning):
    """A third-party plugin could not be loaded and was skipped."""


class ConfigurationWarning(ExpfamWarning):
    """A configuration that is valid but probably not what was meant (e.g. a warmup as long as the run)."""


class TrackingWarning(ExpfamWarning):
    """A tracker failed (a server down, a full disk, a bug in a plugin); the run goes on without it."""
