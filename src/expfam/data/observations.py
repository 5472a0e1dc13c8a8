"""Observations to cluster, read from a file without a train/test split and without labels.

[`read_observations`][expfam.data.observations.read_observations] is what `expfam assign --data PATH` reads: every
observation of the file, in file order, as counts in `0..n_trials`.

* `npz`: the array `x` if the archive has one, else `x_train` followed by `x_test`;
* `idx`: one IDX image file, or a folder (train images, then test images);
* any other dataset plugin: its training then test observations.

Labels, when present, are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from expfam.data.idx import read_idx
from expfam.data.npz import _counts, _open
from expfam.data.split import counts_from_intensities, flat_images
from expfam.errors import DataError


def read_observations(
    path: str | Path,
    dataset: str = "npz",
    *,
    n_trials: int,
    registry: Any = None,
    check_shape: Callable[[np.ndarray, str], object] | None = None,
) -> np.ndarray:
    """Every observation in `path` as float counts of shape `(N, D)`, in file order.

    Args:
        path: an `.npz` archive, an IDX image file or a folder of IDX files.
        dataset: the format (`npz`, `idx`, or another registered dataset name).
        n_trials: the trial count pixels are mapped to (uint8 intensities are rescaled).
        registry: where other dataset names are looked up.
        check_shape: called with each array of images as stored (before it is flattened to
            rows) and its name, e.g. to refuse a shape the model does not take, as given.

    Raises:
        DataError: a missing or malformed file, naming it.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist; check --data", offending=str(path))
    if dataset == "npz" and path.is_file():
        arrays = _open(path)
        parts = ["x"] if "x" in arrays else ["x_train", "x_test"]
        fix = (
            f"the run models counts 0..{n_trials} (the n_trials it was trained with); store 8-bit images as uint8 "
            f"(rescaled to 0..{n_trials}) or rescale the counts to 0..{n_trials}"
        )
        for part in parts:
            if check_shape is not None and np.ndim(arrays[part]) >= 2:
                check_shape(arrays[part], f"{path.name}: {part}")
        return np.concatenate(
            [_counts(arrays[p], where=f"{path.name}: {p}", n_trials=n_trials, fix=fix) for p in parts]
        )
    if dataset == "idx" and path.is_file():
        images = read_idx(path, kind="images")
        if check_shape is not None and images.ndim >= 2:
            check_shape(images, path.name)
        return counts_from_intensities(flat_images(images, where=path.name), n_trials=n_trials, max_value=255)
    from expfam.data.dataset import load_dataset

    split = load_dataset(dataset, path=path, n_trials=n_trials, registry=registry)
    return np.concatenate([split.x_train, split.x_test])


__all__ = ["read_observations"]
