"""The `expfam` console script: check the installation, then run the command line.

The distribution installs four top-level packages (`expfam`, `interactions`,
`objectives`, `cli`). When another distribution installs or shadows one of
them, importing the command line would fail with a traceback, or silently run
someone else's code; this launcher detects the clash first and says so in one
line (exit status 2). It is the only module of `expfam` that imports `cli`.

`python -m expfam ...` runs the same launcher. Its first act sets the handlers of Ctrl-C and
SIGTERM ([`expfam.interrupts`][expfam.interrupts]), before JAX or the command line are imported: an interrupt
at any moment ends with one `interrupted:` line and exit status 130.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from expfam import interrupts
from expfam.plugins import package_clashes

#: Status of a broken installation: the same as other bad input.
INSTALLATION_ERROR = 2
_CLI_PACKAGES = ("cli", "interactions", "objectives")


def _fail_on_clashes(quick: bool) -> None:
    clashes = package_clashes(_CLI_PACKAGES, thorough=not quick)
    if clashes:
        # name the other distributions: a quick find is confirmed by the thorough check
        named = package_clashes([clash.package for clash in clashes]) or clashes
        print(f"error: {named[0].line()}", file=sys.stderr)
        sys.exit(INSTALLATION_ERROR)


def main(argv: Sequence[str] | None = None) -> None:
    """Run `expfam` with `argv` (default: the process arguments), after the installation check."""
    interrupts.install()
    _fail_on_clashes(quick=True)
    try:
        from cli.app import main as cli_main
    except ImportError:
        _fail_on_clashes(quick=False)
        raise
    try:
        cli_main(argv)
    finally:
        interrupts.finished()


if __name__ == "__main__":
    main()
