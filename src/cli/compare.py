"""``expfam compare``: the seed's comparison table of finished runs, and each run's NMI relative to the first."""

from pathlib import Path
from typing import Annotated

import typer

from expfam.experiment.report import compare_runs


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the reference of the NMI ratios.")],
) -> None:
    """Print NMI, R², Purity and Recon of each run side by side (Markdown)."""
    typer.echo(compare_runs(runs))
