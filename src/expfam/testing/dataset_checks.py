r"""Checks of a dataset loader (docs/testing.md, "Datasets").

[`check_dataset`][expfam.testing.dataset_checks.check_dataset] loads a dataset twice with
the same arguments and checks what training relies on:

* **shapes**: `x_train` `(n_train, D)` and `x_test` `(n_test, D)` with the same `D ≥ 1` and
  at least one row each; `image_shape` holds `D` pixels; `name` and `n_trials` are the
  loader's and the caller's;
* **support**: every count lies in the support of the family the data is for (by default
  `Binomial(D, n_trials)`: whole numbers in `0..n_trials`); the message names the split,
  row, column and value of the first count outside it;
* **labels**: `y_train` `(n_train,)` and `y_test` `(n_test,)` are integers `≥ 0`, or both
  absent;
* **determinism**: the second load gives identical arrays (values and dtypes) and metadata.

It needs neither float64 nor compilation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expfam.data import Dataset, DataSplit
from expfam.families import Binomial
from expfam.family import ExponentialFamily

PARTS: tuple[str, ...] = ("train", "test")


def _label(dataset: Dataset) -> str:
    return f"dataset {getattr(dataset, 'name', '?')!r} ({type(dataset).__name__})"


def _check_shapes(name: str, split: DataSplit, dataset: Dataset, n_trials: int) -> int:
    if not isinstance(split, DataSplit):
        raise AssertionError(f"{name}: load returned {type(split).__name__}, expected a DataSplit")
    if split.name != dataset.name:
        raise AssertionError(
            f"{name}: the split is named {split.name!r}; DataSplit(name=...) must be the loader's name"
        )
    if split.n_trials != n_trials:
        raise AssertionError(f"{name}: the split records n_trials={split.n_trials}, but {n_trials} was asked for")
    widths = set()
    for part in PARTS:
        x = np.asarray(getattr(split, f"x_{part}"))
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise AssertionError(f"{name}: x_{part} has shape {x.shape}, expected (n_{part} ≥ 1, D ≥ 1)")
        widths.add(x.shape[1])
    if len(widths) != 1:
        raise AssertionError(f"{name}: x_train and x_test have different widths {sorted(widths)}")
    width = widths.pop()
    height, across = split.image_shape
    if height * across != width:
        raise AssertionError(f"{name}: image_shape {split.image_shape} does not hold the {width} pixels of a row")
    return width


def _check_support(name: str, split: DataSplit, family: ExponentialFamily) -> None:
    for part in PARTS:
        x = np.asarray(getattr(split, f"x_{part}"))
        inside = np.asarray(family.in_support(x), dtype=bool).reshape(x.shape)
        if not inside.all():
            row, column = (int(i) for i in np.argwhere(~inside)[0])
            raise AssertionError(
                f"{name}: x_{part}[{row}, {column}] = {float(x[row, column])!r} lies outside the support of "
                f"{family.describe()} (expected {family.support_text}); {int((~inside).sum())} counts are outside"
            )


def _check_labels(name: str, split: DataSplit) -> bool:
    labels = {part: getattr(split, f"y_{part}") for part in PARTS}
    if all(y is None for y in labels.values()):
        return False
    for part, y in labels.items():
        rows = np.asarray(getattr(split, f"x_{part}")).shape[0]
        if y is None:
            raise AssertionError(f"{name}: y_{part} is missing while the other split has labels")
        y = np.asarray(y)
        if y.shape != (rows,):
            raise AssertionError(f"{name}: y_{part} has shape {y.shape}, expected ({rows},), one label per row")
        if not np.issubdtype(y.dtype, np.integer):
            raise AssertionError(f"{name}: y_{part} has dtype {y.dtype}, expected integer class labels")
        if y.size and y.min() < 0:
            raise AssertionError(f"{name}: y_{part} holds the negative label {int(y.min())}")
    return True


def _check_same(name: str, first: DataSplit, second: DataSplit) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        a, b = getattr(first, field), getattr(second, field)
        if (a is None) != (b is None):
            raise AssertionError(f"{name}: {field} is present in one load and absent in the other")
        if a is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            raise AssertionError(
                f"{name}: loading twice with the same arguments gave different {field} "
                f"({a.dtype}{a.shape} vs {b.dtype}{b.shape}); draw every random number from the seed argument"
            )
    for field in ("name", "n_trials", "image_shape", "source"):
        if getattr(first, field) != getattr(second, field):
            raise AssertionError(f"{name}: loading twice gave different {field}")


def check_dataset(
    dataset: Dataset,
    *,
    path: str | Path | None = None,
    n_trials: int = 4,
    seed: int = 0,
    test_fraction: float = 0.2,
    family: ExponentialFamily | None = None,
) -> dict[str, bool]:
    r"""Load `dataset` twice and check shapes, support, labels and determinism (module docstring).

    Args:
        dataset: the loader, with its options set (e.g. `dataclasses.replace(loader, n_images=50)`).
        path: the file or folder of a loader that reads files.
        n_trials: the trial count `N` the counts are mapped to.
        seed: the seed of the split.
        test_fraction: the share held out for testing.
        family: the observable family the counts must fit (default `Binomial(D, n_trials)`).

    Returns:
        `{"shapes": True, "support": True, "labels": bool, "determinism": True}`; `"labels"` is
        `False` for unlabelled data (the check did not apply).

    Raises:
        AssertionError: naming the dataset, the property and the offending entry.
    """
    name = _label(dataset)
    first = dataset.load(path=path, n_trials=n_trials, seed=seed, test_fraction=test_fraction)
    width = _check_shapes(name, first, dataset, n_trials)
    _check_support(name, first, family if family is not None else Binomial(width, n_trials))
    labelled = _check_labels(name, first)
    second = dataset.load(path=path, n_trials=n_trials, seed=seed, test_fraction=test_fraction)
    _check_same(name, first, second)
    return {"shapes": True, "support": True, "labels": labelled, "determinism": True}
