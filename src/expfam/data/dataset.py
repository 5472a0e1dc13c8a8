"""The dataset-loader base class, look-up by name, and the support check against a family.

A loader is a small final object registered through the `expfam_datasets`
hook. [`Dataset.load`][expfam.data.dataset.Dataset.load] checks the arguments every loader shares, then calls
the loader's [`Dataset.read`][expfam.data.dataset.Dataset.read]. Third-party loaders subclass
[`Dataset`][expfam.data.dataset.Dataset] and implement [`read`][expfam.data.dataset.Dataset.read] only.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from expfam.data.split import DataSplit, require_n_trials
from expfam.errors import ConfigurationError, DataError
from expfam.options import check_option_names, option_names

if TYPE_CHECKING:
    from expfam.family import ExponentialFamily
    from expfam.plugins import Registry


class Dataset(abc.ABC):
    """Abstract dataset loader.

    Class variables:
        name: the registry name (`--dataset NAME` on the command line).
        description: one line for listings.
        needs_path: `load` refuses `path=None`.
        path_meaning: what `path` names (`None`: the loader takes no path).
        fixed_split: the data carries its own train/test split, so `seed` and
            `test_fraction` play no part (a caller may warn when the user set them).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs_path: ClassVar[bool]
    path_meaning: ClassVar[str | None]
    fixed_split: ClassVar[bool]

    def load(
        self,
        *,
        path: str | Path | None = None,
        n_trials: int = 16,
        seed: int = 0,
        test_fraction: float = 0.2,
    ) -> DataSplit:
        """Load the data as counts in `0..n_trials`, split into train and test.

        Args:
            path: a file or folder (see `path_meaning`).
            n_trials: the Binomial trial count `N` pixels are mapped to.
            seed: seeds the train/test split of datasets that draw one.
            test_fraction: share of the data held out for testing, for datasets that
                draw a split; loaders with a `fixed_split` keep the data's own.

        Returns:
            The validated [`DataSplit`][expfam.data.split.DataSplit].

        Raises:
            ConfigurationError: an argument this loader cannot use or a bad value.
            DataError: the data is missing or malformed (the message names the file).
        """
        owner = f"dataset {self.name!r}"
        require_n_trials(owner, n_trials)
        resolved = self._check_path(path)
        if not 0.0 < float(test_fraction) < 1.0:
            raise ConfigurationError(
                f"{owner}: test_fraction must lie strictly between 0 and 1, got {test_fraction!r}",
                offending=test_fraction,
            )
        return self.read(resolved, n_trials=int(n_trials), seed=int(seed), test_fraction=float(test_fraction))

    @abc.abstractmethod
    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        """Read and convert the data; arguments have been checked by [`load`][expfam.data.dataset.Dataset.load]."""

    def _check_path(self, path: str | Path | None) -> Path | None:
        owner = f"dataset {self.name!r}"
        if path is None:
            if self.needs_path:
                raise ConfigurationError(
                    f"{owner} needs a path ({self.path_meaning}); pass path=... (on the command line: --data PATH)",
                    offending=self.name,
                )
            return None
        if self.path_meaning is None:
            raise ConfigurationError(
                f"{owner} takes no path, got {str(path)!r}; drop the path, or choose a dataset that "
                "reads files ('idx' for a folder of MNIST-format files, 'npz' for an .npz archive)",
                offending=path,
            )
        resolved = Path(path).expanduser()
        if not resolved.exists():
            raise DataError(
                f"{owner}: path {str(resolved)!r} does not exist; expected {self.path_meaning}",
                offending=str(resolved),
            )
        return resolved


def dataset_options(dataset: Dataset) -> list[str]:
    """The options a loader accepts: the fields of a dataclass loader (none otherwise)."""
    return option_names(dataset)


def configure_dataset(dataset: Dataset, options: Mapping[str, Any]) -> Dataset:
    """`dataset` with `options` set (e.g. `{"n_classes": 26}`), each checked against its fields.

    Raises:
        ConfigurationError: an option the loader does not have, listing the ones it has.
    """
    if not options:
        return dataset
    check_option_names(
        options, dataset_options(dataset), what=f"dataset {dataset.name!r}", where="[data.options] in a run.toml"
    )
    return dataclasses.replace(dataset, **dict(options))  # type: ignore[type-var]


def load_dataset(
    name: str,
    *,
    path: str | Path | None = None,
    n_trials: int = 16,
    seed: int = 0,
    test_fraction: float = 0.2,
    registry: Registry | None = None,
    options: Mapping[str, Any] | None = None,
) -> DataSplit:
    """Look the loader `name` up in the registry and load it.

    Args:
        name: a registered dataset name (`digits`, `idx`, `npz`, `openml`, ...).
        path: file or folder for file datasets; passed to [`Dataset.load`][expfam.data.dataset.Dataset.load].
        n_trials: trial count N of the count mapping; passed on.
        seed: seed of the train/test split; passed on.
        test_fraction: share held out for testing; passed on.
        registry: the registry to look in (default: the installed plugins).
        options: the loader's own options ([`configure_dataset`][expfam.data.dataset.configure_dataset]).

    Returns:
        The loaded [`DataSplit`][expfam.data.split.DataSplit].

    Examples:
        >>> split = load_dataset("digits", n_trials=16)
        >>> split.x_train.shape, split.image_shape
        ((1437, 64), (8, 8))
    """
    if registry is None:
        from expfam.plugins import get_registry

        registry = get_registry()
    dataset = configure_dataset(registry.dataset(name), options or {})
    split: DataSplit = dataset.load(path=path, n_trials=n_trials, seed=seed, test_fraction=test_fraction)
    return split


def check_data_for_family(split: DataSplit, family: ExponentialFamily) -> None:
    """Refuse a split whose counts fall outside `family`'s support, naming column and value.

    Raises:
        SupportError: from [`ExponentialFamily.check_support`][expfam.family.ExponentialFamily.check_support],
            for the first bad entry of the training data, then of the test data.
    """
    for part, x in (("training", split.x_train), ("test", split.x_test)):
        family.check_support(x, what=f"{split.name} {part} data ({split.source})")
