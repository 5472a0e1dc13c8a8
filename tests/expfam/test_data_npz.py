"""The ``npz`` dataset: the dtype rule (uint8 rescaled, other dtypes are counts) and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from expfam.data import Npz
from expfam.errors import DataError


def save(path: Path, **arrays: Any) -> Path:
    base: dict[str, Any] = {
        "x_train": np.zeros((4, 2, 3), np.uint8),
        "y_train": np.array([0, 1, 2, 3]),
        "x_test": np.zeros((2, 2, 3), np.uint8),
        "y_test": np.array([1, 0]),
    }
    base.update(arrays)
    np.savez(path, **{key: value for key, value in base.items() if value is not None})
    return path


def test_uint8_images_are_rescaled(tmp_path: Path) -> None:
    pixels = np.array([[[0, 8, 128], [247, 248, 255]]] * 4, dtype=np.uint8)
    split = Npz().load(path=save(tmp_path / "d.npz", x_train=pixels), n_trials=16)
    np.testing.assert_array_equal(split.x_train[0], [0, 1, 8, 15, 16, 16])
    assert split.image_shape == (2, 3) and split.x_train.dtype == np.float64


def test_other_dtypes_are_counts(tmp_path: Path) -> None:
    counts = np.array([[0, 3, 5, 1, 2, 4]] * 4, dtype=np.int64)
    split = Npz().load(path=save(tmp_path / "d.npz", x_train=counts, x_test=counts[:2].astype(np.float32)), n_trials=5)
    np.testing.assert_array_equal(split.x_train, counts)
    assert split.image_shape == (1, 6)  # 6 is not a square, no image_shape stored


def test_flat_images_take_stored_or_square_shape(tmp_path: Path) -> None:
    flat = np.zeros((4, 6), np.uint8)
    stored = Npz().load(path=save(tmp_path / "a.npz", x_train=flat, x_test=flat[:2], image_shape=np.array([3, 2])))
    assert stored.image_shape == (3, 2)
    square = np.zeros((4, 9), np.uint8)
    assert Npz().load(path=save(tmp_path / "b.npz", x_train=square, x_test=square[:2])).image_shape == (3, 3)


def test_counts_above_n_trials_are_refused(tmp_path: Path) -> None:
    counts = np.zeros((4, 6))
    counts[2, 4] = 9.0
    with pytest.raises(DataError, match=r"d\.npz: x_train: value 9\.0 at column 4 of row 2 is not a count in 0\.\.8"):
        Npz().load(path=save(tmp_path / "d.npz", x_train=counts, x_test=np.zeros((2, 6))), n_trials=8)


def test_unit_interval_floats_get_a_hint(tmp_path: Path) -> None:
    x = np.full((4, 6), 0.5)
    with pytest.raises(DataError, match=r"value 0\.5 at column 0 of row 0 .*look like intensities in \[0, 1\]"):
        Npz().load(path=save(tmp_path / "d.npz", x_train=x, x_test=x[:2]))


def test_one_label_array_without_the_other_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"d\.npz: holds y_train but not the other label array"):
        Npz().load(path=save(tmp_path / "d.npz", y_test=None))


def test_missing_image_array_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"d\.npz: missing array\(s\) x_test; expected x_train and x_test"):
        Npz().load(path=save(tmp_path / "d.npz", x_test=None))


def test_labels_are_optional(tmp_path: Path) -> None:
    split = Npz().load(path=save(tmp_path / "d.npz", y_train=None, y_test=None))
    assert not split.has_labels and split.y_train is None and split.n_classes == 0
    assert "no labels" in split.describe()


def test_a_single_array_x_is_split_by_the_seed(tmp_path: Path) -> None:
    x = np.tile(np.arange(10.0)[:, None], (1, 4))  # counts; each row distinct
    path = tmp_path / "x.npz"
    np.savez(path, x=x)
    first, again = Npz().load(path=path, seed=3), Npz().load(path=path, seed=3)
    assert first.x_train.shape == (8, 4) and first.x_test.shape == (2, 4) and not first.has_labels
    np.testing.assert_array_equal(first.x_test, again.x_test)
    rows = {tuple(row) for row in np.concatenate([first.x_train, first.x_test])}
    assert len(rows) == 10  # a partition of the rows


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4,), np.uint8)}, r"x_train has shape \(4,\), expected \(n, height, width\) or \(n, D\)"),
        ({"y_train": np.array([0, 1, 2])}, r"y_train has shape \(3,\), expected \(4,\)"),
        ({"x_test": np.zeros((2, 3, 2), np.uint8)}, r"x_train images have shape \(2, 3\) but x_test images \(3, 2\)"),
        ({"y_test": np.array([0.0, 1.0])}, r"y_test has dtype float64, expected integer labels"),
        ({"y_test": np.array([0, -1])}, r"y_test: label -1 at row 1 is negative"),
    ],
)
def test_wrong_shapes_and_labels(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=r"d\.npz: " + message):
        Npz().load(path=save(tmp_path / "d.npz", **arrays))


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad\.npz: not an \.npz archive \(it does not start like a zip file"):
        Npz().load(path=tmp_path / "bad.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"single\.npy: holds a single array"):
        Npz().load(path=tmp_path / "single.npy")
