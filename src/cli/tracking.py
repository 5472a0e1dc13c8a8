"""`--track NAME` and `--tracking-uri URI` of `expfam train` and `expfam sweep`, over a file's `[track]`."""

from pathlib import Path
from typing import Annotated

import typer

from expfam.errors import ConfigurationError
from expfam.experiment.tracking import make_trackers, read_track_settings
from expfam.plugins import Registry
from expfam.tracker import Tracker

TRACK_HELP = (
    "Report the run to this tracker too (repeatable; `expfam plugins` lists them), e.g. mlflow "
    "(pip install 'expfam[mlflow]'); over [track] trackers of the file."
)
URI_HELP = (
    "Where the trackers report, e.g. http://127.0.0.1:5000. (default: the tracker's, MLflow: sqlite next to --out)"
)

TrackFlag = Annotated[list[str] | None, typer.Option("--track", metavar="NAME", help=TRACK_HELP)]
TrackingUriFlag = Annotated[str | None, typer.Option("--tracking-uri", metavar="URI", help=URI_HELP)]


def trackers_from_flags(
    track: list[str] | None, uri: str | None, file: Path | None, *, base: Path, registry: Registry | None = None
) -> list[Tracker]:
    """The trackers of `--track`/`--tracking-uri` over the `[track]` table of `file`, made before any work.

    Raises:
        ConfigurationError: `--tracking-uri` without a tracker, or a tracker that cannot be made (e.g.
            `--track mlflow` without MLflow: the message says `pip install 'expfam[mlflow]'`).
        UnknownNameError: a tracker no plugin registers.
    """
    settings = read_track_settings(file).over(track, uri)
    if settings.uri is not None and not settings.trackers:
        raise ConfigurationError(
            "--tracking-uri needs a tracker: add --track NAME (e.g. --track mlflow)", offending="--tracking-uri"
        )
    return make_trackers(settings, base=base, registry=registry)
