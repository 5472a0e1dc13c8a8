"""The `digits` dataset: scikit-learn's bundled 8×8 handwritten digits (no download).

1797 images with pixel values `0..16` — exactly Binomial(64, 16) data. With
`n_trials == 16` the counts are the pixel values; otherwise `round(v·N/16)`
(round half up). The train/test split is stratified by class and drawn with
`seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final

import numpy as np

from expfam.data.dataset import Dataset
from expfam.data.split import DataSplit, counts_from_intensities
from expfam.errors import ConfigurationError

DIGITS_MAX_VALUE = 16


@final
@dataclass(frozen=True)
class Digits(Dataset):
    """scikit-learn's `load_digits`: 1797 images of 8×8 pixels, values 0..16, 10 classes."""

    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "scikit-learn's bundled 8×8 digits (1797 images, values 0..16); no download"
    needs_path: ClassVar[bool] = False
    path_meaning: ClassVar[str | None] = None
    fixed_split: ClassVar[bool] = False

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        images, labels = load_digits(return_X_y=True)
        try:
            x_train, x_test, y_train, y_test = train_test_split(
                images, labels, test_size=test_fraction, stratify=labels, random_state=seed
            )
        except ValueError as error:  # too few test points to hold every class
            raise ConfigurationError(
                f"dataset 'digits': test_fraction={test_fraction!r} cannot be split by class ({error}); "
                "choose a fraction that leaves at least one image of each class on each side",
                offending=test_fraction,
            ) from error
        return DataSplit(
            x_train=counts_from_intensities(x_train, n_trials=n_trials, max_value=DIGITS_MAX_VALUE),
            y_train=np.asarray(y_train, dtype=np.int64),
            x_test=counts_from_intensities(x_test, n_trials=n_trials, max_value=DIGITS_MAX_VALUE),
            y_test=np.asarray(y_test, dtype=np.int64),
            name=self.name,
            n_trials=n_trials,
            image_shape=(8, 8),
            source="sklearn.datasets.load_digits (bundled with scikit-learn)",
        )
