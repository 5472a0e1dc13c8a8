"""`expfam assign RUN_DIR --data PATH`: cluster new (or unlabelled) observations with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from expfam.data.observations import read_observations
from expfam.experiment.runs.trained import load_run, write_assignments
from expfam.shapes import as_observations


def assign(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `expfam train`.")],
    data: Annotated[Path, typer.Option("--data", help="An .npz archive (x, or x_train then x_test) or IDX data.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Format of --data: npz or idx.")] = "npz",
    out: Annotated[Path, typer.Option("--out", help="The CSV to write.")] = Path("assignments.csv"),
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write all K responsibilities p_0..p_{K-1}.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
) -> None:
    """Assign every observation in --data to a cluster of RUN_DIR's model; labels are not needed."""
    run = load_run(run_dir)

    def check_shape(array: np.ndarray, what: str) -> None:  # the shape as stored, before rows are flattened
        as_observations(run.model.observable, np.zeros(array.shape, np.int8), image_shape=run.image_shape, what=what)

    x = read_observations(data, dataset, n_trials=run.n_trials, check_shape=check_shape)
    path = write_assignments(run, x, out, probabilities=probabilities, overwrite=overwrite)
    clusters = np.loadtxt(path, delimiter=",", skiprows=1, usecols=1, dtype=int, ndmin=1)
    used = len(np.unique(clusters))
    typer.echo(f"assigned {x.shape[0]} observations to {used} of {run.model.n_clusters} clusters; wrote {path}")
