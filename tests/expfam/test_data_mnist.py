"""The ``mnist`` and ``fashion-mnist`` datasets: a given folder, the cache folder, OpenML, and the offline line.

Nothing downloads: every test points the cache at a temporary folder and replaces
scikit-learn's ``fetch_openml`` (a stand-in, a recorder, or a network failure).
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.datasets
from typer.testing import CliRunner

from expfam.data import load_dataset, openml, write_idx
from expfam.data.mnist import RELEASE_FILES, cache_folder
from expfam.errors import DataError

SHAPES = {"train": 6, "t10k": 3}


def write_release(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Four small gzipped IDX files (6 train and 3 test images of 28×28); returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in SHAPES.items():
        arrays[f"{part}-images"] = rng.integers(0, 256, (n, 28, 28))
        arrays[f"{part}-labels"] = rng.integers(0, 10, n)
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", arrays[f"{part}-images"], "images")
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", arrays[f"{part}-labels"], "labels")
    return arrays


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The cache under ``tmp_path/cache``; ``fetch_openml`` records its calls and fails as if offline."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls: list[str] = []

    def offline(name: str, **_: Any) -> None:
        calls.append(name)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    return calls


def _counts(pixels: np.ndarray, n_trials: int) -> np.ndarray:
    """The documented map ``round(v·N/255)``, computed here by hand."""
    return np.floor(pixels.reshape(len(pixels), -1) * n_trials / 255 + 0.5)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_given_folder_is_read_as_the_standard_split(tmp_path: Path, name: str, isolated: list[str]) -> None:
    arrays = write_release(tmp_path / "files")
    split = load_dataset(name, path=tmp_path / "files", n_trials=16)
    assert split.name == name and split.source == str(tmp_path / "files") and split.image_shape == (28, 28)
    np.testing.assert_array_equal(split.x_train, _counts(arrays["train-images"], 16))
    np.testing.assert_array_equal(split.x_test, _counts(arrays["t10k-images"], 16))
    assert split.y_train.tolist() == arrays["train-labels"].tolist()
    assert split.y_test.tolist() == arrays["t10k-labels"].tolist()
    assert isolated == []  # no download tried


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_the_cache_folder_is_used_without_a_path(tmp_path: Path, name: str, isolated: list[str]) -> None:
    assert cache_folder(name) == tmp_path / "cache" / "expfam" / name
    arrays = write_release(cache_folder(name), seed=3)
    split = load_dataset(name, n_trials=4)
    assert split.source == str(cache_folder(name))
    np.testing.assert_array_equal(split.x_test, _counts(arrays["t10k-images"], 4))
    assert isolated == []


def test_a_partial_cache_folder_names_the_missing_files(tmp_path: Path) -> None:
    write_release(cache_folder("mnist"))
    (cache_folder("mnist") / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing 1 of the 4 MNIST-format files: t10k-images-idx3-ubyte"):
        load_dataset("mnist")


@pytest.mark.parametrize(("name", "openml_name"), [("mnist", "mnist_784"), ("fashion-mnist", "Fashion-MNIST")])
def test_without_files_the_release_comes_from_openml(monkeypatch, name: str, openml_name: str) -> None:
    monkeypatch.setattr(openml, "MNIST_SHAPE", (70, 784))
    monkeypatch.setattr(openml, "MNIST_N_TRAIN", 60)
    calls: list[tuple[str, dict[str, Any]]] = []

    def fetch(dataset: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        calls.append((dataset, kwargs))
        images = np.full((70, 784), 255.0)
        return images, np.array([str(i % 10) for i in range(70)], dtype=object)

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fetch)
    split = load_dataset(name, n_trials=8)
    [(dataset, kwargs)] = calls
    assert dataset == openml_name and kwargs["as_frame"] is False
    assert split.name == name and split.x_train.shape == (60, 784) and split.x_test.shape == (10, 784)
    assert split.x_train.max() == 8 and split.y_test[:3].tolist() == [0, 1, 2]


@pytest.mark.parametrize(("name", "page"), [("mnist", "ossci-datasets"), ("fashion-mnist", "zalandoresearch")])
def test_offline_without_files_is_one_line_saying_where_to_put_which_files(
    name: str, page: str, isolated: list[str]
) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(name)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"dataset {name!r}: no IDX files in {cache_folder(name)}")
    assert "OpenML cannot be reached" in message and page in message
    assert all(file in message for file in RELEASE_FILES)
    assert "--data FOLDER" in message
    assert len(isolated) == 1  # one attempt


def test_download_false_never_touches_the_network(isolated: list[str]) -> None:
    with pytest.raises(DataError, match=r"downloading is off \(\[data.options\] download = false\); download "):
        load_dataset("mnist", options={"download": False})
    assert isolated == []


def test_the_command_line_prints_the_offline_line(tmp_path: Path) -> None:
    from cli.app import create_app

    result = CliRunner().invoke(create_app(), ["train", "--dataset", "fashion-mnist", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: dataset 'fashion-mnist': no IDX files in {cache_folder('fashion-mnist')}")
    assert "t10k-labels-idx1-ubyte.gz" in line
    assert not (tmp_path / "run").exists()
