r"""Tracking runs and sweeps: the `[track]` settings, making trackers by name, and calling them safely.

A run directory is the source of truth; trackers ([`expfam.tracker`][expfam.tracker]) get copies of
what it holds. [`Tracking`][expfam.experiment.tracking.Tracking] passes every event to each tracker
and catches what a tracker raises: the first failure of a tracker is reported as one
[`TrackingWarning`][expfam.errors.TrackingWarning] line and that tracker is not called again, so a
server that goes away or a bug in a third-party tracker never stops a run or changes its files.

`[track]` in a config or sweep file (the command line's `--track` and `--tracking-uri` override it):

```toml
[track]
trackers = ["mlflow"]             # or one name: trackers = "mlflow"
uri = "http://127.0.0.1:5000"     # default: the tracker's own (MLflow: sqlite next to the runs)
experiment = "digits"             # default: the tracker's own (MLflow: "expfam")
```

Examples:
    >>> track_settings({"trackers": "mlflow", "experiment": "digits"})
    TrackSettings(trackers=('mlflow',), uri=None, experiment='digits')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError, TrackingWarning
from expfam.experiment.config import RunConfig, flatten_config
from expfam.experiment.config_text import read_toml, toml_value
from expfam.plugins import Registry, get_registry
from expfam.tracker import RunEnd, RunStart, Tracker

#: The keys of `[track]`.
TRACK_KEYS: tuple[str, ...] = ("trackers", "uri", "experiment")


@dataclass(frozen=True)
class TrackSettings:
    """Which trackers to use and where they report (`[track]`; nothing: no tracking).

    Attributes:
        trackers: names of registered trackers (`expfam plugins` lists them).
        uri: where they report (`None`: each tracker's default).
        experiment: the name grouping the runs in the tracker (`None`: each tracker's default).
    """

    trackers: tuple[str, ...] = ()
    uri: str | None = None
    experiment: str | None = None

    def over(self, trackers: Sequence[str] | None = None, uri: str | None = None) -> TrackSettings:
        """These settings with the command line's `--track` names and `--tracking-uri` laid over them."""
        return replace(
            self, trackers=tuple(trackers) if trackers else self.trackers, uri=uri if uri is not None else self.uri
        )


def track_settings(table: Any, where: str = "[track]") -> TrackSettings:
    """Parse a `[track]` table, naming any unknown key or value of the wrong type.

    Raises:
        ConfigurationError: `table` is not a table, has an unknown key, or a value of the wrong type.
    """
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where} must be a table of keys, got {table!r}", offending="track")
    unknown = [key for key in table if key not in TRACK_KEYS]
    if unknown:
        raise ConfigurationError(
            f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(TRACK_KEYS)}", offending=unknown[0]
        )
    names = table.get("trackers", ())
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(
            f'{where} trackers must be a name or a list of names, e.g. trackers = ["mlflow"]; got {names!r}',
            offending="trackers",
        )
    for key in ("uri", "experiment"):
        if key in table and not isinstance(table[key], str):
            raise ConfigurationError(f"{where} {key} must be a string, got {table[key]!r}", offending=key)
    return TrackSettings(tuple(names), table.get("uri"), table.get("experiment"))


def read_track_settings(path: str | Path | None) -> TrackSettings:
    """The `[track]` table of a config or sweep file (`None` or no table: no tracking)."""
    if path is None:
        return TrackSettings()
    mapping = read_toml(path, "config file")
    return track_settings(mapping["track"], f"[track] of {path}") if "track" in mapping else TrackSettings()


def make_trackers(
    settings: TrackSettings, *, base: Path | None = None, registry: Registry | None = None
) -> list[Tracker]:
    """Make the trackers `settings` names, before any work (a tracker that cannot be made is an error).

    Args:
        settings: the names, URI and experiment.
        base: the folder that holds the runs (a tracker's default store goes next to them).
        registry: where the names are looked up (default: the installed plugins).

    Raises:
        UnknownNameError: a name no plugin registers (the message lists those that are).
        ConfigurationError: a tracker refused its settings (e.g. MLflow is not installed).
    """
    registry = registry or get_registry()
    classes = [registry.tracker(name) for name in dict.fromkeys(settings.trackers)]
    return [cls(uri=settings.uri, base=base, experiment=settings.experiment) for cls in classes]


def config_params(config: RunConfig) -> dict[str, str]:
    """The configuration as a tracker's parameters: flat keys (`flatten_config`), values as TOML text."""
    return {key: toml_value(value) for key, value in flatten_config(config).items()}


def run_files(run_dir: Path) -> dict[str, Path]:
    """The files of a run directory as artefacts, `{relative name: path}` (hidden files and locks left out)."""
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    named = {p.relative_to(run_dir).as_posix(): p for p in files}
    return {name: path for name, path in named.items() if not any(part.startswith(".") for part in name.split("/"))}


class Tracking:
    """Every event to every tracker; a tracker that raises is reported once and dropped.

    The caller calls it after writing the run directory, so what a tracker does (or fails to do)
    cannot change the run. Nothing here raises an `Exception` from a tracker.

    Examples:
        >>> tracking = Tracking([])
        >>> tracking.start(RunStart(name="quick"))
        >>> tracking.active
        False
    """

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)
        self.failed: list[str] = []

    @property
    def active(self) -> bool:
        """Whether any tracker is still being called."""
        return bool(self.trackers)

    def _each(self, event: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, event)(*args)
            except Exception as error:  # the run must go on, whatever a tracker does
                self.trackers.remove(tracker)
                name = getattr(tracker, "name", type(tracker).__name__)
                self.failed.append(name)
                text = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                warnings.warn(
                    f"tracker {name!r} failed in {event} ({text}); the run goes on without it, "
                    "its run directory holds every result",
                    TrackingWarning,
                    stacklevel=3,
                )

    def start(self, run: RunStart) -> None:
        """A run (or a sweep, or a sweep's trial) starts."""
        self._each("start", run)

    def log_row(self, row: Mapping[str, float]) -> None:
        """A history row (its `step` included)."""
        self._each("log_row", int(row["step"]), dict(row))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """The final metrics."""
        self._each("log_metrics", dict(metrics))

    def log_artifacts(self, files: Mapping[str, Path]) -> None:
        """Files to keep with the run, `{name: path}`."""
        if files:
            self._each("log_artifacts", dict(files))

    def end(self, end: RunEnd) -> None:
        """The innermost open run ends."""
        self._each("end", end)


__all__ = [
    "TRACK_KEYS",
    "TrackSettings",
    "Tracking",
    "config_params",
    "make_trackers",
    "read_track_settings",
    "run_files",
    "track_settings",
]
