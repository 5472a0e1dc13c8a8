r"""The train/test split every dataset loader returns, and the pixel → count map.

Images become counts for a Binomial(D, N) observable by

$$
c = \operatorname{round}\!\Big(v \cdot \frac{N}{v_{\max}}\Big),
$$

with round-half-up, computed exactly in integers as `(2·v·N + v_max) // (2·v_max)`
(`v_max = 255` for 8-bit images, `16` for scikit-learn's digits).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import final

import numpy as np

from expfam.errors import ConfigurationError, DataError


def require_n_trials(owner: str, n_trials: int) -> None:
    """Raise a [`ConfigurationError`][expfam.errors.ConfigurationError] unless `n_trials` is a positive integer."""
    if not isinstance(n_trials, (int, np.integer)) or isinstance(n_trials, bool) or n_trials < 1:
        raise ConfigurationError(
            f"{owner}: n_trials must be a positive integer, got {n_trials!r}; pass a whole number ≥ 1 "
            f"(16 is the usual choice for MNIST)",
            offending=n_trials,
        )


def counts_from_intensities(values: np.ndarray, *, n_trials: int, max_value: int) -> np.ndarray:
    r"""Map integer intensities `0..max_value` to counts `0..n_trials`.

    $$
    c = \lfloor v N / v_{\max} + \tfrac12 \rfloor = (2 v N + v_{\max}) \,//\, (2 v_{\max})
    $$

    The map is the identity when `n_trials == max_value`.

    Args:
        values: integer-valued array with entries in `0..max_value`.
        n_trials: the Binomial trial count `N`.
        max_value: the largest possible intensity `v_max`.

    Returns:
        A float64 array of the same shape holding whole numbers in `0..n_trials`.

    Examples:
        >>> counts_from_intensities(np.array([0, 8, 255]), n_trials=16, max_value=255)
        array([ 0.,  1., 16.])
    """
    require_n_trials("counts_from_intensities", n_trials)
    integers = np.asarray(values).astype(np.int64)
    counts = (2 * integers * int(n_trials) + max_value) // (2 * max_value)
    return counts.astype(np.float64)


def flat_images(images: np.ndarray, *, where: str) -> np.ndarray:
    """`(n, ...)` images as `(n, D)` rows, refusing an array with no image or no pixel.

    Raises:
        DataError: fewer than two dimensions, `n == 0` or `D == 0`, naming `where` (the file and array).
    """
    if images.ndim < 2:
        raise DataError(
            f"{where} has shape {images.shape}: it is {images.ndim}-D, but observations must be 2-D (rows, pixels) "
            "or 3-D (rows, height, width); for a single observation store x.reshape(1, -1)",
            offending=images.shape,
        )
    if images.shape[0] == 0 or math.prod(images.shape[1:]) == 0:
        raise DataError(
            f"{where} has shape {images.shape}: it holds no images or no pixels; each split needs at least one "
            "image of at least one pixel",
            offending=images.shape,
        )
    return images.reshape(images.shape[0], -1)


def _stratified(labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`(held, kept)` row indices: `count` rows held out in proportion to each label's rows."""
    classes, sizes = np.unique(labels, return_counts=True)
    quotas = count * sizes / labels.size
    taken = np.floor(quotas).astype(np.int64)
    short = count - int(taken.sum())
    taken[np.argsort(-(quotas - taken), kind="stable")[:short]] += 1
    held: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for label, take in zip(classes, taken, strict=True):
        rows = rng.permutation(np.flatnonzero(labels == label))
        held.append(rows[:take])
        kept.append(rows[take:])
    return np.sort(np.concatenate(held)), np.sort(np.concatenate(kept))


def _field_error(name: str, message: str, offending: object) -> DataError:
    return DataError(f"DataSplit {name!r}: {message}", offending=offending)


@final
@dataclass(frozen=True, eq=False)
class DataSplit:
    """Counts and labels of one dataset, split into train and test.

    Attributes:
        x_train: `(n_train, D)` float64 counts in `0..n_trials`.
        y_train: `(n_train,)` int64 class labels (used only for evaluation), or `None`
            for unlabelled data (then `y_test` is `None` too).
        x_test: `(n_test, D)` float64 counts.
        y_test: `(n_test,)` int64 labels, or `None`.
        name: the dataset's registry name.
        n_trials: the Binomial trial count `N` the counts were mapped to.
        image_shape: `(height, width)` with `height·width == D` (for plots).
        source: where the data came from (a path or a description).

    Arrays are converted to float64 / int64 on construction; shapes are checked.
    """

    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray | None = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray | None = dataclasses.field(repr=False)
    name: str
    n_trials: int
    image_shape: tuple[int, int]
    source: str

    def __post_init__(self) -> None:
        require_n_trials(f"DataSplit {self.name!r}", self.n_trials)
        if (self.y_train is None) != (self.y_test is None):
            raise _field_error(
                self.name, "labels for one split only; give both y_train and y_test, or neither", "labels"
            )
        for part in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{part}"))
            if x.ndim != 2:
                raise _field_error(self.name, f"x_{part} has shape {x.shape}, expected (n_{part}, D)", x.shape)
            if x.shape[0] == 0 or x.shape[1] == 0:
                raise _field_error(
                    self.name,
                    f"x_{part} has shape {x.shape}: each split needs at least one image of ≥ 1 pixel",
                    x.shape,
                )
            object.__setattr__(self, f"x_{part}", x.astype(np.float64, copy=False))
            if getattr(self, f"y_{part}") is None:
                continue
            y = np.asarray(getattr(self, f"y_{part}"))
            if y.ndim != 1:
                raise _field_error(self.name, f"y_{part} has shape {y.shape}, expected (n_{part},)", y.shape)
            if x.shape[0] != y.shape[0]:
                raise _field_error(
                    self.name,
                    f"x_{part} has {x.shape[0]} rows but y_{part} has {y.shape[0]} labels; "
                    "every image needs exactly one label",
                    (x.shape[0], y.shape[0]),
                )
            if y.size and not np.issubdtype(y.dtype, np.integer):
                raise _field_error(self.name, f"y_{part} has dtype {y.dtype}, expected integer labels", y.dtype)
            if y.size and y.min() < 0:
                raise _field_error(self.name, f"y_{part} holds the negative label {y.min()}", int(y.min()))
            object.__setattr__(self, f"y_{part}", y.astype(np.int64, copy=False))
        n_features = self.x_train.shape[1]
        if self.x_test.shape[1] != n_features:
            raise _field_error(
                self.name,
                f"x_train has {n_features} columns but x_test has {self.x_test.shape[1]}",
                (n_features, self.x_test.shape[1]),
            )
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n_features:
            raise _field_error(
                self.name,
                f"image_shape {self.image_shape} does not hold {n_features} pixels; "
                "pass (height, width) with height·width == D",
                self.image_shape,
            )
        object.__setattr__(self, "image_shape", shape)

    @property
    def n_features(self) -> int:
        """`D`, the number of pixels (columns) per observation."""
        return int(self.x_train.shape[1])

    @property
    def has_labels(self) -> bool:
        """Whether the data carries class labels (NMI, purity and accuracy need them)."""
        return self.y_train is not None

    @property
    def n_classes(self) -> int:
        """One more than the largest label in either split (0 without labels)."""
        if self.y_train is None or self.y_test is None:
            return 0
        labels = np.concatenate([self.y_train, self.y_test])
        return int(labels.max()) + 1 if labels.size else 0

    @classmethod
    def from_parts(
        cls,
        parts: Mapping[str, np.ndarray | None],
        *,
        name: str,
        n_trials: int,
        image_shape: tuple[int, int],
        source: str,
    ) -> DataSplit:
        """A split from a loader's `{"x_train", "x_test"[, "y_train", "y_test"]}` (labels may be missing or `None`)."""
        x_train, x_test = parts.get("x_train"), parts.get("x_test")
        if x_train is None or x_test is None:
            raise DataError(f"{source}: a split needs both x_train and x_test", offending=source)
        return cls(
            x_train=x_train,
            y_train=parts.get("y_train"),
            x_test=x_test,
            y_test=parts.get("y_test"),
            name=name,
            n_trials=n_trials,
            image_shape=image_shape,
            source=source,
        )

    def validation_split(self, fraction: float, *, seed: int) -> DataSplit:
        r"""Hold out `fraction` of the training rows as a validation split (for model selection).

        Returns a split whose `train` part is the remaining training rows and whose
        `test` part is the held-out validation rows; the original test rows are not
        used, so selecting on it never looks at the test split. `round(fraction · n_train)`
        rows are held out, drawn by permutations from `seed`; with labels the draw is
        stratified: class `c` of `n_c` rows gives `⌊fraction · n_c⌋` rows, and the
        rows still missing go to the classes with the largest remainders, so every class
        keeps its share in both parts.
        """
        if not 0.0 < fraction < 1.0:
            raise ConfigurationError(f"validation fraction must be in (0, 1), got {fraction}", offending=fraction)
        n_train = self.x_train.shape[0]
        n_validation = round(fraction * n_train)
        if not 0 < n_validation < n_train:
            raise DataError(
                f"DataSplit {self.name!r}: a validation fraction of {fraction} of {n_train} training rows "
                f"leaves {n_validation} validation rows; use a larger dataset or fraction",
                offending=fraction,
            )
        rng = np.random.default_rng(seed)
        if self.y_train is None:
            order = rng.permutation(n_train)
            held, kept = order[:n_validation], order[n_validation:]
        else:
            held, kept = _stratified(self.y_train, n_validation, rng)
        return dataclasses.replace(
            self,
            x_train=self.x_train[kept],
            y_train=None if self.y_train is None else self.y_train[kept],
            x_test=self.x_train[held],
            y_test=None if self.y_train is None else self.y_train[held],
            source=f"{self.source} (validation: {n_validation} of the training rows)",
        )

    def describe(self) -> str:
        """One line, e.g. `digits: 1437 train / 360 test, D=64 (8×8), counts 0..16, 10 classes`."""
        height, width = self.image_shape
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, D={self.n_features} "
            f"({height}×{width}), counts 0..{self.n_trials}, "
            f"{f'{self.n_classes} classes' if self.has_labels else 'no labels'}, from {self.source}"
        )
