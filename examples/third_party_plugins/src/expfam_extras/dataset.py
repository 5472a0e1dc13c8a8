r"""The ``stripes`` dataset: ``side × side`` images of one bright row or column, generated from the seed.

Label ``j < side`` is row ``j``; label ``side + j`` is column ``j``. Pixels on the
stripe are ``n_trials``; each other pixel is ``n_trials`` with probability
``noise``, else 0. Options (``[data.options]``): ``n_images``, ``side``, ``noise``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final

import numpy as np

from expfam.data import Dataset, DataSplit
from expfam.errors import ConfigurationError


@final
@dataclass(frozen=True)
class Stripes(Dataset):
    """Synthetic stripes; no file, no download."""

    name: ClassVar[str] = "stripes"
    description: ClassVar[str] = "synthetic side×side images of one bright row or column"
    needs_path: ClassVar[bool] = False
    path_meaning: ClassVar[str | None] = None
    fixed_split: ClassVar[bool] = False

    n_images: int = 600
    side: int = 6
    noise: float = 0.05

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        if self.n_images < 4 or self.side < 2 or not 0.0 <= self.noise < 1.0:
            raise ConfigurationError(
                f"stripes: need n_images ≥ 4, side ≥ 2 and 0 ≤ noise < 1, got {self.n_images}, {self.side}, "
                f"{self.noise}",
                offending=(self.n_images, self.side, self.noise),
            )
        generator = np.random.default_rng(seed)
        labels = generator.integers(0, 2 * self.side, self.n_images)
        images = (generator.random((self.n_images, self.side, self.side)) < self.noise).astype(float)
        for index, label in enumerate(labels):
            if label < self.side:
                images[index, label, :] = 1.0
            else:
                images[index, :, label - self.side] = 1.0
        x = n_trials * images.reshape(self.n_images, -1)
        n_test = max(1, round(test_fraction * self.n_images))
        return DataSplit(
            x_train=x[n_test:],
            y_train=labels[n_test:],
            x_test=x[:n_test],
            y_test=labels[:n_test],
            name=self.name,
            n_trials=n_trials,
            image_shape=(self.side, self.side),
            source=f"generated (seed {seed})",
        )
