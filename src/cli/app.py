"""The `expfam` typer application and its entry point.

Exit codes (`EXIT_CODES`, also in `expfam --help`): 0 success; 2 bad input — a
usage error from typer (unknown option, missing argument) or an
[`ExpfamError`][expfam.errors.ExpfamError] about the configuration or the data (printed as
one line `error: ...` on stderr, no traceback); 1 a run that failed (it diverged,
a file could not be written, a sweep trial failed); 130 interrupted.

Run `expfam --help`, or `python -m expfam --help`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import assign, compare, evaluate, plugins, sweep, train
from expfam import __version__, interrupts
from expfam.errors import ExpfamError, ExpfamWarning, PluginWarning, RunFailedError
from expfam.plugins import Registry, get_registry

USER_ERROR = 2
RUN_FAILED = 1
INTERRUPTED = 130
#: A reader that closed stdout early (`expfam plugins | head -1`): quiet, as SIGPIPE ends other tools.
BROKEN_PIPE = 141
#: Set to 1 to get the traceback of an unexpected error instead of the one-line report.
DEBUG_VARIABLE = "EXPFAM_DEBUG"
HELP = "Exponential-family harmoniums: train and evaluate runs, sweep and compare them, list plugins."

#: Exit status → meaning, shared by every command.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "a run failed (it diverged, a file could not be written, memory ran out, a sweep trial failed)",
    2: "bad input (usage, configuration, data)",
    130: "interrupted (Ctrl-C, SIGTERM); what was kept and how to resume is printed",
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
    """Print `error: <message>` on one line to stderr."""
    message = " ".join(str(error).split())
    typer.echo(f"error: {message}", err=True)


#: What to do about an `OSError`, by its errno; other errors get no advice they might not need.
_OS_ERROR_FIXES: dict[int, str] = {
    errno.ENOSPC: "free disk space, then rerun",
    errno.EDQUOT: "free disk space (the disk quota is full), then rerun",
    errno.EACCES: "fix the permissions, then rerun",
    errno.EPERM: "fix the permissions, then rerun",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EISDIR: "it is a folder where a file is expected; name a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder; fix the path",
    errno.ENOENT: "it does not exist; check the path",
}


def _os_error_text(error: OSError) -> str:
    what = f" {str(error.filename)!r}" if error.filename is not None else ""
    fix = _OS_ERROR_FIXES.get(error.errno or 0)
    return f"cannot read or write{what}: {error.strerror or error}" + (f"; {fix}" if fix else "")


def _quiet_broken_pipe() -> None:
    """stdout's reader has gone: no message (none could reach it), stdout to /dev/null, exit 141."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
    sys.exit(BROKEN_PIPE)


def _show_warning(
    fallback: Any, message: Warning | str, category: type[Warning], filename: str, lineno: int, *rest: Any
) -> None:
    """Print expfam's own warnings as one line `warning: ...` on stderr; others as Python would."""
    if issubclass(category, ExpfamWarning):
        typer.echo(f"warning: {' '.join(str(message).split())}", err=True)
    else:
        fallback(message, category, filename, lineno, *rest)


class ExpfamGroup(TyperGroup):
    """The command group: every failure ends with one line `error: ...` on stderr and an exit code.

    [`RunFailedError`][expfam.errors.RunFailedError] (a diverged run, a file that could not be
    written) and any other `OSError` exit 1; any other [`ExpfamError`][expfam.errors.ExpfamError] (bad
    input) exits 2; an interrupt not handled by the command exits 130. An unexpected
    exception is reported on one line as an internal error (exit 1); set
    `EXPFAM_DEBUG=1` to see its traceback. expfam's warnings
    ([`ExpfamWarning`][expfam.errors.ExpfamWarning]) are printed once each, as one line
    `warning: ...` on stderr.
    """

    def invoke(self, ctx: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("once", category=ExpfamWarning)
            shown = warnings.showwarning
            warnings.showwarning = functools.partial(_show_warning, shown)
            return self._invoke(ctx)

    def _invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RunFailedError as error:  # the input was fine; the run failed
            report_error(error)
            raise typer.Exit(RUN_FAILED) from None
        except ExpfamError as error:
            report_error(error)
            raise typer.Exit(USER_ERROR) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as error:
            report_error(RuntimeError(_os_error_text(error)))
            raise typer.Exit(RUN_FAILED) from None
        except KeyboardInterrupt:
            interrupts.settle()
            typer.echo("\ninterrupted: nothing was written", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except Exception as error:
            kinds = {cls.__name__ for cls in type(error).__mro__}  # click's classes (vendored by newer typer)
            if "UsageError" in kinds:  # typer's usage lines, then the reason as the last line `error: ...`
                context = getattr(error, "ctx", None)
                if context is not None:
                    typer.echo(f"{context.get_usage()}\nTry '{context.command_path} --help' for help.\n", err=True)
                report_error(RuntimeError(error.format_message()))  # type: ignore[attr-defined]
                raise typer.Exit(USER_ERROR) from None
            if kinds & {"ClickException", "Exit", "Abort"}:
                raise  # exits chosen by a command
            if os.environ.get(DEBUG_VARIABLE):
                raise
            if isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error):
                report_error(RuntimeError(f"out of memory ({error}); lower the batch sizes or sample counts"))
                raise typer.Exit(RUN_FAILED) from None
            report_error(
                RuntimeError(
                    f"internal error ({type(error).__name__}: {error}); please report it with the command line "
                    f"(set {DEBUG_VARIABLE}=1 for the traceback)"
                )
            )
            raise typer.Exit(RUN_FAILED) from None


def create_app(registry: Registry | None = None) -> typer.Typer:
    """The `expfam` app; `--block` and `--observable` help list `registry`'s names (default: installed)."""
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
    with warnings.catch_warnings():  # the library warns too; the command line says it once, in its own words
        warnings.simplefilter("ignore", PluginWarning)
        registry = get_registry()
    for failure in registry.failures:
        typer.echo(f"warning: plugin skipped: {failure.line()} (see `expfam plugins`)", err=True)
    return create_app()


def __getattr__(name: str) -> Any:
    """`cli.app.app`: the app over the installed plugins, built on first access (not at import)."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m cli.app` (the console script is `expfam.__main__`)."""
    interrupts.install()  # idempotent; python -m cli.app sets it only after its imports
    try:
        _default_app()(args=list(argv) if argv is not None else None, prog_name="expfam")
    except ExpfamError as error:  # raised outside a command, e.g. while loading plugins
        report_error(error)
        sys.exit(USER_ERROR)
    except BrokenPipeError:  # e.g. from --help
        _quiet_broken_pipe()
    finally:
        interrupts.finished()  # a signal while the interpreter exits does not undo a finished command
        try:  # output still buffered meets a reader that has gone
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    main()
