"""The `npz` dataset: one `.npz` archive with `x_train, y_train, x_test, y_test`.

Pixel rule, decided by the image arrays' dtype:

* `uint8`: intensities `0..255`, mapped to counts `round(v·N/255)` like IDX files;
* any other integer, bool or float dtype: already counts, which must be whole numbers
  in `0..n_trials` (checked; the error names the array, row, column and value).

Images are `(n, height, width)` or flat `(n, D)`. For flat images the shape for
plots comes from an optional `image_shape` array of two integers, else a square
`√D × √D` when `D` is a perfect square, else `1 × D`.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final

import numpy as np

from expfam.data.dataset import Dataset
from expfam.data.idx import check_labels
from expfam.data.split import DataSplit, counts_from_intensities, flat_images
from expfam.errors import DataError

REQUIRED_KEYS: tuple[str, ...] = ("x_train", "x_test")
LABEL_KEYS: tuple[str, ...] = ("y_train", "y_test")


def _open(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise DataError(
            f"{path}: expected an .npz file, found a folder (use the 'idx' dataset for folders)", offending=str(path)
        )
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)
    try:
        with path.open("rb") as handle:
            magic = handle.read(6)
    except OSError as error:
        raise DataError(f"{path.name}: cannot be read ({error.strerror or error})", offending=str(path)) from None
    if not magic.startswith((b"PK\x03\x04", b"\x93NUMPY")):  # a zip archive (.npz) or one array (.npy)
        raise DataError(
            f"{path.name}: not an .npz archive (it does not start like a zip file; damaged or another format); "
            "save the arrays with np.savez(path, x_train=..., x_test=...)",
            offending=str(path),
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except unreadable as error:
        raise DataError(f"{path.name}: not a readable .npz archive ({error})", offending=str(path)) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path.name}: holds a single array, expected an .npz archive", offending=str(path))
    with archive:
        missing = [key for key in REQUIRED_KEYS if key not in archive.files]
        if missing and "x" not in archive.files:
            raise DataError(
                f"{path.name}: missing array(s) {', '.join(missing)}; expected x_train and x_test "
                f"(labels y_train, y_test optional), or one array x (found {', '.join(archive.files) or 'none'}). "
                "Save with np.savez(path, x_train=..., x_test=...) or np.savez(path, x=...)",
                offending=missing,
            )
        labels = [key for key in LABEL_KEYS if key in archive.files]
        if not missing and len(labels) == 1:
            raise DataError(
                f"{path.name}: holds {labels[0]} but not the other label array; give y_train and y_test, or neither",
                offending=labels,
            )
        try:
            return {key: archive[key] for key in archive.files}
        except unreadable as error:
            raise DataError(f"{path.name}: an array cannot be read ({error})", offending=str(path)) from error


def _counts(images: np.ndarray, *, where: str, n_trials: int, fix: str | None = None) -> np.ndarray:
    """`images` as `(n, D)` float counts in `0..n_trials`; `fix`: the advice for a value out of range."""
    flat = flat_images(images, where=where)
    if images.dtype == np.uint8:
        return counts_from_intensities(flat, n_trials=n_trials, max_value=255)
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_) or np.issubdtype(
        images.dtype, np.complexfloating
    ):
        raise DataError(
            f"{where}: dtype {images.dtype} is neither uint8 intensities nor numeric counts", offending=images.dtype
        )
    values = flat.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values > n_trials)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        value = values[row, column].item()
        hint = (
            "values look like intensities in [0, 1]; convert to uint8 0..255 so they are rescaled"
            if np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
            else fix
            or f"store 8-bit images as uint8 (rescaled to 0..{n_trials}), or raise n_trials (--n-trials) to at least "
            f"the largest count, {np.nanmax(np.where(np.isfinite(values), values, np.nan)).item():g}"
        )
        raise DataError(
            f"{where}: value {value!r} at column {column} of row {row} is not a count in 0..{n_trials} "
            f"(dtype {images.dtype} is read as counts; only uint8 is rescaled); {hint}",
            offending=(row, column, value),
        )
    return values


def _image_shape(arrays: dict[str, np.ndarray], n_features: int, name: str) -> tuple[int, int]:
    if arrays["x_train"].ndim == 3:
        return int(arrays["x_train"].shape[1]), int(arrays["x_train"].shape[2])
    if "image_shape" in arrays:
        stored = np.asarray(arrays["image_shape"]).ravel()
        if not (np.issubdtype(stored.dtype, np.integer) or np.issubdtype(stored.dtype, np.floating)) or not np.all(
            np.isfinite(stored)
        ):
            raise DataError(
                f"{name}: image_shape {stored.tolist()} is not two whole numbers; store (height, width)",
                offending=stored.tolist(),
            )
        shape = tuple(int(s) for s in stored)
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n_features:
            raise DataError(
                f"{name}: image_shape {shape} is not two positive sizes holding {n_features} pixels; "
                "store (height, width) with height·width == D",
                offending=shape,
            )
        return shape[0], shape[1]
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else (1, n_features)


def _split_single(arrays: dict[str, np.ndarray], *, seed: int, test_fraction: float) -> dict[str, np.ndarray]:
    """`x` (and `y`) split into `x_train, x_test` (`y_train, y_test`) by a seeded permutation."""
    x = arrays["x"]
    n_test = max(1, round(test_fraction * x.shape[0]))
    if x.ndim < 2 or x.shape[0] - n_test < 1:
        raise DataError(f"array x of shape {x.shape} is too small to split into train and test", offending=x.shape)
    order = np.random.default_rng(seed).permutation(x.shape[0])
    test, train = order[:n_test], order[n_test:]
    split = {"x_train": x[train], "x_test": x[test]}
    if "y" in arrays:
        split.update(y_train=arrays["y"][train], y_test=arrays["y"][test])
    if "image_shape" in arrays:
        split["image_shape"] = arrays["image_shape"]
    return split


@final
@dataclass(frozen=True)
class Npz(Dataset):
    """An `.npz` archive with `x_train, x_test` and optional labels (see the module for the pixel rule).

    Attributes:
        n_classes: labels must lie in `0..n_classes-1` (`None`: any non-negative label).
    """

    name: ClassVar[str] = "npz"
    description: ClassVar[str] = "an .npz archive with x_train, x_test [, y_train, y_test] or x (uint8 is rescaled)"
    needs_path: ClassVar[bool] = True
    path_meaning: ClassVar[str | None] = "an .npz file with arrays x_train, x_test (labels y_train, y_test optional)"
    fixed_split: ClassVar[bool] = True

    n_classes: int | None = None

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        assert path is not None  # load() refuses a missing path
        arrays = _open(path)
        if "x_train" not in arrays:
            arrays = _split_single(arrays, seed=seed, test_fraction=test_fraction)
        fields: dict[str, np.ndarray | None] = {}
        pixel_shape: tuple[int, ...] | None = None
        for part in ("train", "test"):
            images, labels = arrays[f"x_{part}"], arrays.get(f"y_{part}")
            if images.ndim not in (2, 3):
                raise DataError(
                    f"{path.name}: x_{part} has shape {images.shape}, expected (n, height, width) or (n, D)",
                    offending=images.shape,
                )
            if pixel_shape is not None and images.shape[1:] != pixel_shape:
                raise DataError(
                    f"{path.name}: x_train images have shape {pixel_shape} but x_test images {images.shape[1:]}; "
                    "both splits need one image size",
                    offending=(pixel_shape, images.shape[1:]),
                )
            pixel_shape = images.shape[1:]
            fields[f"x_{part}"] = _counts(images, where=f"{path.name}: x_{part}", n_trials=n_trials)
            fields[f"y_{part}"] = None
            if labels is None:
                continue
            if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"{path.name}: y_{part} has shape {labels.shape}, expected ({images.shape[0]},) "
                    f"— one label per image of x_{part}",
                    offending=labels.shape,
                )
            if labels.size and not np.issubdtype(labels.dtype, np.integer):
                raise DataError(
                    f"{path.name}: y_{part} has dtype {labels.dtype}, expected integer labels; "
                    "save them with .astype(int)",
                    offending=labels.dtype,
                )
            check_labels(labels, where=f"{path.name}: y_{part}", n_classes=self.n_classes)
            fields[f"y_{part}"] = labels.astype(np.int64)
        x_train = fields["x_train"]
        assert x_train is not None  # read above
        image_shape = _image_shape(arrays, x_train.shape[1], path.name)
        return DataSplit.from_parts(
            fields, name=self.name, n_trials=n_trials, image_shape=image_shape, source=str(path)
        )
