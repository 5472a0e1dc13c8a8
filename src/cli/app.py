"""The ``expfam`` typer application and its entry point.

Exit codes: 0 success; 1 a sweep trial failed (``expfam sweep``); 2 bad input — an :class:`~expfam.errors.ExpfamError`
(printed as one line ``error: ...`` on stderr, no traceback) or a usage error
from typer (unknown option, missing argument); 130 interrupted.

Run ``expfam --help``, or ``python -m cli.app --help``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from cli import assign, compare, evaluate, plugins, sweep, train
from expfam.errors import ExpfamError
from expfam.plugins import Registry

USER_ERROR = 2
HELP = "Exponential-family harmoniums: train and evaluate runs, sweep and compare them, list plugins. See docs/cli.md."


def report_error(error: BaseException) -> None:
    """Print ``error: <message>`` on one line to stderr."""
    message = " ".join(str(error).split())
    typer.echo(f"error: {message}", err=True)


class ExpfamGroup(TyperGroup):
    """The command group; turns an :class:`ExpfamError` from any command into exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ExpfamError as error:
            report_error(error)
            raise typer.Exit(USER_ERROR) from None


def create_app(registry: Registry | None = None) -> typer.Typer:
    """The ``expfam`` app; ``--block`` and ``--observable`` help list ``registry``'s names (default: installed)."""
    application = typer.Typer(
        cls=ExpfamGroup,
        name="expfam",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    application.command("train")(train.make_command(registry))
    application.command("evaluate")(evaluate.evaluate)
    application.command("assign")(assign.assign)
    application.command("plugins")(plugins.make_command(registry))
    application.command("sweep")(sweep.sweep)
    application.command("compare")(compare.compare)
    return application


@functools.lru_cache(maxsize=1)
def _default_app() -> typer.Typer:
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
