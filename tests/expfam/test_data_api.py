"""The data API: DataSplit checks, look-up through the registry, the support check, and ``openml``."""

from __future__ import annotations

import urllib.error
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.datasets

from expfam.data import Dataset, DataSplit, Digits, check_data_for_family, load_dataset, openml, plugin, write_idx
from expfam.errors import DataError, SupportError, UnknownNameError
from expfam.families.binomial import Binomial
from expfam.plugins import build_registry


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry([plugin], load_entry_points=False)


def tiny_split(**changes: Any) -> DataSplit:
    fields: dict[str, Any] = dict(
        x_train=np.array([[0, 1, 2, 3], [4, 5, 6, 7]]),
        y_train=np.array([0, 1]),
        x_test=np.array([[1, 1, 1, 1]]),
        y_test=np.array([1]),
        name="tiny",
        n_trials=16,
        image_shape=(2, 2),
        source="made in a test",
    )
    fields.update(changes)
    return DataSplit(**fields)


def test_datasplit_converts_dtypes() -> None:
    split = tiny_split()
    assert split.x_train.dtype == np.float64 and split.y_train.dtype == np.int64
    assert split.n_features == 4 and split.n_classes == 2
    assert "tiny: 2 train / 1 test, D=4 (2×2)" in split.describe()
    assert "array" not in repr(split)  # arrays stay out of the repr


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"x_train": np.zeros(4)}, r"x_train has shape \(4,\), expected \(n_train, D\)"),
        ({"y_test": np.array([0, 1])}, r"x_test has 1 rows but y_test has 2 labels"),
        ({"x_test": np.zeros((1, 5))}, r"x_train has 4 columns but x_test has 5"),
        ({"image_shape": (3, 3)}, r"image_shape \(3, 3\) does not hold 4 pixels"),
        ({"y_train": np.array([0.0, 1.0])}, r"y_train has dtype float64, expected integer labels"),
        ({"y_train": np.array([0, -2])}, r"y_train holds the negative label -2"),
    ],
)
def test_datasplit_refuses_inconsistent_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=r"DataSplit 'tiny': " + message):
        tiny_split(**changes)


def test_the_plugin_registers_six_loaders(registry: Any) -> None:
    assert registry.names("datasets") == ["digits", "fashion-mnist", "idx", "mnist", "npz", "openml"]
    for name in registry.names("datasets"):
        loader = registry.dataset(name)
        assert isinstance(loader, Dataset) and loader.name == name and loader.description


def test_the_entry_point_names_the_plugin_module() -> None:
    (point,) = [ep for ep in entry_points(group="expfam") if ep.name == "datasets"]
    assert point.value == "expfam.data.plugin"
    assert point.load() is plugin


def test_load_dataset_looks_up_by_name(registry: Any, tmp_path: Path) -> None:
    split = load_dataset("digits", n_trials=4, seed=2, registry=registry)
    assert split.n_trials == 4 and split.x_train.max() == 4
    for base, array in {
        "train-images-idx3-ubyte.gz": np.full((2, 2, 2), 255, np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([0, 1]),
        "t10k-images-idx3-ubyte.gz": np.zeros((1, 2, 2), np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([1]),
    }.items():
        write_idx(tmp_path / base, array, "images" if "images" in base else "labels")
    split = load_dataset("idx", path=str(tmp_path), n_trials=3, registry=registry)
    assert split.x_train.tolist() == [[3, 3, 3, 3]] * 2 and split.source == str(tmp_path)
    with pytest.raises(
        UnknownNameError, match=r"unknown dataset 'mnsit'; registered: digits, fashion-mnist, idx, mnist, npz, openml"
    ):
        load_dataset("mnsit", registry=registry)


def test_support_violation_names_column_and_value() -> None:
    split = tiny_split(x_test=np.array([[1, 1, 9, 1]]))
    check_data_for_family(split, Binomial(size=4, n_trials=16))
    with pytest.raises(
        SupportError, match=r"tiny training data \(made in a test\): value 5\.0 at column 1 of row 1 .*n_trials=4"
    ):
        check_data_for_family(split, Binomial(size=4, n_trials=4))
    with pytest.raises(SupportError, match=r"tiny test data \(made in a test\): value 9\.0 at column 2 of row 0"):
        check_data_for_family(split, Binomial(size=4, n_trials=8))


def test_digits_fit_binomial_64_16() -> None:
    check_data_for_family(Digits().load(), Binomial(size=64, n_trials=16))
    with pytest.raises(SupportError, match=r"digits training data .*value 16\.0 at column \d+ of row \d+"):
        check_data_for_family(Digits().load(), Binomial(size=64, n_trials=15))


def fake_mnist(**_: Any) -> tuple[np.ndarray, np.ndarray]:
    """A 70-image stand-in for mnist_784 as ``fetch_openml`` returns it (float pixels, string labels)."""
    images = np.zeros((70, 784))
    images[:, 0] = 255.0
    images[:, 1] = 128.0
    labels = np.array([str(i % 10) for i in range(70)], dtype=object)
    return images, labels


@pytest.fixture
def small_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the expected size from 60 000 + 10 000 to 60 + 10 images."""
    monkeypatch.setattr(openml, "MNIST_SHAPE", (70, 784))
    monkeypatch.setattr(openml, "MNIST_N_TRAIN", 60)


@pytest.mark.usefixtures("small_mnist")
def test_openml_with_a_monkeypatched_fetch(monkeypatch: pytest.MonkeyPatch, registry: Any) -> None:
    calls: list[dict[str, Any]] = []

    def fetch(name: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        calls.append({"name": name, **kwargs})
        return fake_mnist()

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fetch)
    split = load_dataset("openml", n_trials=16, registry=registry)
    assert calls[0]["name"] == "mnist_784" and calls[0]["as_frame"] is False
    assert split.x_train.shape == (60, 784) and split.x_test.shape == (10, 784)
    assert split.image_shape == (28, 28) and split.y_test[:3].tolist() == [0, 1, 2]
    assert split.x_train[0, :3].tolist() == [16.0, 8.0, 0.0]


def test_openml_without_network_says_what_to_do(monkeypatch: pytest.MonkeyPatch, registry: Any) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(DataError, match=r"could not fetch mnist_784 .*--dataset idx --data FOLDER"):
        load_dataset("openml", registry=registry)


def test_openml_refuses_malformed_downloads(monkeypatch: pytest.MonkeyPatch, registry: Any) -> None:
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda *a, **k: (np.zeros((10, 784)), np.zeros(10)))
    with pytest.raises(DataError, match=r"images have shape \(10, 784\), expected \(70000, 784\)"):
        load_dataset("openml", registry=registry)
