"""The ``expfam`` typer application and its entry point.

Exit codes (:data:`EXIT_CODES`, also in ``expfam --help``): 0 success; 2 bad input — a
usage error from typer (unknown option, missing argument) or an
:class:`~expfam.errors.ExpfamError` about the configuration or the data (printed as
one line ``error: ...`` on stderr, no traceback); 1 a run that failed (it diverged,
a file could not be written, a sweep trial failed); 130 interrupted.

Run ``expfam --help``, or ``python -m expfam --help``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import assign, compare, evaluate, plugins, sweep, train
from expfam import __version__
from expfam.errors import ExpfamError, TrainingDivergedError
from expfam.plugins import Registry, get_registry

USER_ERROR = 2
RUN_FAILED = 1
HELP = "Exponential-family harmoniums: train and evaluate runs, sweep and compare them, list plugins."

#: Exit status → meaning, shared by every command.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a run failed (it diverged, a file could not be written, a sweep trial failed)",
    2: "bad input (usage, configuration, data)",
    130: "interrupted (Ctrl-C)",
}
EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"expfam {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the expfam version and exit."),
    ] = False,
) -> None:
    """Exponential-family harmoniums: train and evaluate runs, sweep and compare them, list plugins."""


def report_error(error: BaseException) -> None:
    """Print ``error: <message>`` on one line to stderr."""
    message = " ".join(str(error).split())
    typer.echo(f"error: {message}", err=True)


class ExpfamGroup(TyperGroup):
    """The command group: a diverged run exits 1, any other :class:`ExpfamError` (bad input) exits 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TrainingDivergedError as error:  # the input was fine; the run failed
            report_error(error)
            raise typer.Exit(RUN_FAILED) from None
        except ExpfamError as error:
            report_error(error)
            raise typer.Exit(USER_ERROR) from None


def create_app(registry: Registry | None = None) -> typer.Typer:
    """The ``expfam`` app; ``--block`` and ``--observable`` help list ``registry``'s names (default: installed)."""
    application = typer.Typer(
        cls=ExpfamGroup,
        name="expfam",
        help=HELP,
        epilog=EPILOG,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback(epilog=EPILOG)(_root)
    application.command("train", epilog=EPILOG)(train.make_command(registry))
    application.command("evaluate", epilog=EPILOG)(evaluate.evaluate)
    application.command("assign", epilog=EPILOG)(assign.assign)
    application.command("plugins", epilog=EPILOG)(plugins.make_command(registry))
    application.command("sweep", epilog=EPILOG)(sweep.sweep)
    application.command("compare", epilog=EPILOG)(compare.compare)
    return application


@functools.lru_cache(maxsize=1)
def _default_app() -> typer.Typer:
    for failure in get_registry().failures:
        typer.echo(f"warning: plugin skipped: {failure.line()} (see `expfam plugins`)", err=True)
    return create_app()


def __getattr__(name: str) -> Any:
    """``cli.app.app``: the app over the installed plugins, built on first access (not at import)."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``expfam = "cli.app:main"``)."""
    try:
        _default_app()(args=list(argv) if argv is not None else None, prog_name="expfam")
    except ExpfamError as error:  # raised outside a command, e.g. while loading plugins
        report_error(error)
        sys.exit(USER_ERROR)


if __name__ == "__main__":
    main()
