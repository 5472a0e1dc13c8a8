"""The `openml` dataset: MNIST (`mnist_784`) fetched from OpenML — only when asked.

This is the one loader that touches the network (through scikit-learn's
`fetch_openml`, which caches under `path` or scikit-learn's data home). The
split is the standard one: the first 60 000 images train, the last 10 000 test.
Pixels `0..255` become counts `round(v·N/255)`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, final

import numpy as np

from expfam.data.dataset import Dataset
from expfam.data.idx import check_labels
from expfam.data.split import DataSplit, counts_from_intensities
from expfam.errors import DataError

MNIST_SHAPE = (70_000, 784)
MNIST_N_TRAIN = 60_000


def _fetch(data_home: Path | None, dataset: str = "mnist_784") -> tuple[Any, Any]:
    from sklearn.datasets import fetch_openml

    parser = "pandas" if importlib.util.find_spec("pandas") is not None else "liac-arff"
    return fetch_openml(
        dataset,
        version=1,
        as_frame=False,
        return_X_y=True,
        parser=parser,
        data_home=None if data_home is None else str(data_home),
    )


@final
@dataclass(frozen=True)
class OpenML(Dataset):
    """MNIST from OpenML (`mnist_784`); needs the network unless already cached."""

    name: ClassVar[str] = "openml"
    description: ClassVar[str] = "MNIST (mnist_784) downloaded from OpenML by scikit-learn; needs the network once"
    needs_path: ClassVar[bool] = False
    path_meaning: ClassVar[str | None] = "an existing folder to cache the download in (scikit-learn's data_home)"
    fixed_split: ClassVar[bool] = True

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        try:
            images, labels = _fetch(path)
        except OSError as error:  # URLError, HTTPError, timeouts and refused connections
            raise DataError(
                f"dataset 'openml': could not fetch mnist_784 from OpenML ({error}); the network is "
                "unavailable or OpenML is down. Download the four MNIST IDX files and use "
                "--dataset idx --data FOLDER, or run once with network access to fill the cache",
                offending="mnist_784",
            ) from error
        source = f"OpenML mnist_784 (cache: {path or 'scikit-learn data home'})"
        return split_from_openml(images, labels, name=self.name, source=source, n_trials=n_trials)


def split_from_openml(images: Any, labels: Any, *, name: str, source: str, n_trials: int) -> DataSplit:
    """The standard split of a 70 000-image MNIST-format table from OpenML (first 60 000 train), as counts.

    Raises:
        DataError: the table is not 70 000 × 784 whole pixels in 0..255 with labels 0..9.
    """
    pixels = np.asarray(images, dtype=np.float64)
    if pixels.shape != MNIST_SHAPE:
        raise DataError(f"{source}: images have shape {pixels.shape}, expected {MNIST_SHAPE}", offending=pixels.shape)
    whole = np.isfinite(pixels).all() and (pixels == np.round(pixels)).all()
    if not (whole and pixels.min() >= 0 and pixels.max() <= 255):
        raise DataError(
            f"{source}: pixels are not whole numbers in 0..255; clear the cache and fetch again", offending=source
        )
    try:
        classes = np.asarray(labels).astype(np.int64)
    except ValueError as error:
        raise DataError(f"{source}: labels are not integers ({error})", offending=source) from error
    check_labels(classes, where=source, n_classes=10)
    counts = counts_from_intensities(pixels, n_trials=n_trials, max_value=255)
    return DataSplit(
        x_train=counts[:MNIST_N_TRAIN],
        y_train=classes[:MNIST_N_TRAIN],
        x_test=counts[MNIST_N_TRAIN:],
        y_test=classes[MNIST_N_TRAIN:],
        name=name,
        n_trials=n_trials,
        image_shape=(28, 28),
        source=source,
    )
