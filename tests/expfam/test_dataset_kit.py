"""`expfam.testing.check_dataset` over every built-in dataset, and what it catches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from expfam.data import Dataset, DataSplit, write_idx
from expfam.data import openml as openml_module
from expfam.data import plugin as builtin_datasets
from expfam.data.idx import IDX_FILES
from expfam.families import Poisson
from expfam.testing import check_dataset

RNG = np.random.default_rng(0)
IMAGES = {"train": RNG.integers(0, 256, (12, 3, 4)), "test": RNG.integers(0, 256, (5, 3, 4))}
LABELS = {"train": RNG.integers(0, 10, 12), "test": RNG.integers(0, 10, 5)}


def _idx_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for (part, kind), base in IDX_FILES.items():
        write_idx(tmp_path / base, IMAGES[part] if kind == "images" else LABELS[part], kind)
    return tmp_path


def _npz_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "small.npz"
    np.savez(
        path,
        x_train=IMAGES["train"].astype(np.uint8),
        y_train=LABELS["train"],
        x_test=IMAGES["test"].astype(np.uint8),
        y_test=LABELS["test"],
    )
    return path


def _small_openml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download replaced by a 17-image stand-in (no network in tests); the loader's conversion runs."""
    pixels = np.random.default_rng(1).integers(0, 256, (17, 784)).astype(float)
    labels = np.concatenate([LABELS["train"], LABELS["test"]]).astype(str)  # OpenML gives string labels
    monkeypatch.setattr(openml_module, "MNIST_SHAPE", (17, 784))
    monkeypatch.setattr(openml_module, "MNIST_N_TRAIN", 12)
    monkeypatch.setattr(openml_module, "_fetch", lambda data_home: (pixels, labels))


#: How each built-in dataset gets its input here: a path to small files, or `None` (no path).
SETUPS: dict[str, Callable[[Path, pytest.MonkeyPatch], Path | None]] = {
    "digits": lambda tmp_path, monkeypatch: None,
    "idx": _idx_folder,
    "npz": _npz_file,
    "openml": _small_openml,
    "mnist": _idx_folder,  # the files from a folder (--data); the cache and OpenML routes: test_data_mnist.py
    "fashion-mnist": _idx_folder,
}
BUILTIN = [dataset.name for dataset in builtin_datasets.expfam_datasets()]


def test_every_built_in_dataset_has_a_setup_here() -> None:
    assert not set(BUILTIN) - set(SETUPS), f"add a setup for {sorted(set(BUILTIN) - set(SETUPS))} to SETUPS"


@pytest.mark.parametrize(
    "dataset",
    [dataset for dataset in builtin_datasets.expfam_datasets() if dataset.name in SETUPS],  # others: test above
    ids=lambda dataset: dataset.name,
)
def test_every_built_in_dataset_passes_the_dataset_kit(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = SETUPS[dataset.name](tmp_path, monkeypatch)
    report = check_dataset(dataset, path=path, n_trials=4, seed=3)
    assert report == {"shapes": True, "support": True, "labels": True, "determinism": True}


def test_the_support_is_checked_against_the_family_given() -> None:
    digits = builtin_datasets.expfam_datasets()[0]
    assert check_dataset(digits, n_trials=16, family=Poisson(64))["support"]


@dataclass(frozen=True)
class Faulty(Dataset):
    """Counts of `0..top` (outside `0..n_trials` when `top > n_trials`), optionally drawn without the seed."""

    name: ClassVar[str] = "faulty"
    description: ClassVar[str] = "a loader with a fault"
    needs_path: ClassVar[bool] = False
    path_meaning: ClassVar[str | None] = None
    fixed_split: ClassVar[bool] = False

    top: int = 4
    unseeded: bool = False

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        rng = np.random.default_rng(None if self.unseeded else seed)
        x = rng.integers(0, 4, (10, 4)).astype(float)
        x[3, 2] = self.top
        return DataSplit(
            x_train=x[2:], y_train=None, x_test=x[:2], y_test=None, name=self.name, n_trials=n_trials,
            image_shape=(2, 2), source="test",
        )  # fmt: skip


def test_unlabelled_data_passes_with_labels_reported_as_not_applicable() -> None:
    assert check_dataset(Faulty(), n_trials=4) == {
        "shapes": True,
        "support": True,
        "labels": False,
        "determinism": True,
    }


def test_a_count_above_n_trials_is_named_with_split_row_column_and_value() -> None:
    with pytest.raises(AssertionError, match=r"'faulty'.*x_train\[1, 2\] = 9\.0 lies outside the support of"):
        check_dataset(Faulty(top=9), n_trials=4)


def test_a_loader_that_ignores_the_seed_fails_determinism() -> None:
    with pytest.raises(AssertionError, match="loading twice with the same arguments gave different x_train"):
        check_dataset(Faulty(unseeded=True), n_trials=4)
