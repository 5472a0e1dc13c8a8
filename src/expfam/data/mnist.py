r"""The `mnist` and `fashion-mnist` datasets: the standard IDX files, from a folder, a cache or OpenML.

Where the data comes from, first match wins:

1. `path` (`--data FOLDER`): a folder holding the four IDX files
   (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
   `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`), read as the
   [`idx`][expfam.data.Idx] loader reads them.
2. The cache folder [`cache_folder(name)`][expfam.data.mnist.cache_folder]:
   `$XDG_CACHE_HOME/expfam/<name>`, by default `~/.cache/expfam/mnist` and
   `~/.cache/expfam/fashion-mnist`, when it holds the image files.
3. OpenML (`mnist_784` or `Fashion-MNIST`) through scikit-learn's `fetch_openml`,
   which keeps its own copy in scikit-learn's data home (`~/scikit_learn_data`), unless
   the option `download = false`.

Offline with no files, the error is one line naming the files, the folder to put them
in and where to download them by hand. Pixels `0..255` become counts
`round(v·N/255)`; the split is the standard one (60 000 train, 10 000 test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, final

from expfam.data import openml
from expfam.data.dataset import Dataset
from expfam.data.idx import IDX_FILES, Idx
from expfam.data.split import DataSplit
from expfam.errors import DataError

#: The four files of a release, as they are usually downloaded (gzipped).
RELEASE_FILES: tuple[str, ...] = tuple(f"{base}.gz" for base in IDX_FILES.values())


def cache_folder(name: str) -> Path:
    """`$XDG_CACHE_HOME/expfam/<name>` (`~/.cache/expfam/<name>` when the variable is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root).expanduser() / "expfam" / name


def _has_images(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    names = {entry.name for entry in folder.iterdir()}
    return any(name.startswith(("train-images", "t10k-images")) for name in names)


@dataclass(frozen=True)
class _Release(Dataset):
    """A named MNIST-format release: from `path`, the cache folder, or OpenML (see the module)."""

    needs_path: ClassVar[bool] = False
    fixed_split: ClassVar[bool] = True
    openml_name: ClassVar[str]
    download_page: ClassVar[str]

    download: bool = True

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        folder = path if path is not None else cache_folder(self.name)
        if path is not None or _has_images(folder):
            split = Idx().read(folder, n_trials=n_trials, seed=seed, test_fraction=test_fraction)
            return DataSplit.from_parts(
                {"x_train": split.x_train, "y_train": split.y_train, "x_test": split.x_test, "y_test": split.y_test},
                name=self.name,
                n_trials=n_trials,
                image_shape=split.image_shape,
                source=str(folder),
            )
        if not self.download:
            raise DataError(self._where_to_put(folder, "downloading is off ([data.options] download = false)"))
        try:
            images, labels = openml._fetch(None, self.openml_name)
        except OSError as error:  # URLError, HTTPError, timeouts and refused connections
            reason = f"OpenML cannot be reached ({' '.join(str(error).split())})"
            raise DataError(self._where_to_put(folder, reason), offending=str(folder)) from error
        source = f"OpenML {self.openml_name} (cache: scikit-learn data home)"
        return openml.split_from_openml(images, labels, name=self.name, source=source, n_trials=n_trials)

    def _where_to_put(self, folder: Path, reason: str) -> str:
        return (
            f"dataset {self.name!r}: no IDX files in {folder} and {reason}; download {', '.join(RELEASE_FILES)} "
            f"from {self.download_page} into {folder} (or into any folder and pass --data FOLDER)"
        )


@final
@dataclass(frozen=True)
class Mnist(_Release):
    """MNIST (LeCun et al.): handwritten digits, 28×28, labels 0..9.

    Attributes:
        download: fetch `mnist_784` from OpenML when no IDX files are found (`False`: never).
    """

    name: ClassVar[str] = "mnist"
    description: ClassVar[str] = (
        "MNIST digits from IDX files in --data FOLDER or ~/.cache/expfam/mnist, else downloaded from OpenML"
    )
    path_meaning: ClassVar[str | None] = "a folder holding the four MNIST IDX files (default: ~/.cache/expfam/mnist)"
    openml_name: ClassVar[str] = "mnist_784"
    download_page: ClassVar[str] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (a mirror of yann.lecun.com/exdb/mnist)"
    )


@final
@dataclass(frozen=True)
class FashionMnist(_Release):
    """Fashion-MNIST (Zalando): 28×28 images of ten kinds of clothing, labels 0..9.

    Attributes:
        download: fetch `Fashion-MNIST` from OpenML when no IDX files are found (`False`: never).
    """

    name: ClassVar[str] = "fashion-mnist"
    description: ClassVar[str] = (
        "Fashion-MNIST from IDX files in --data FOLDER or ~/.cache/expfam/fashion-mnist, else downloaded from OpenML"
    )
    path_meaning: ClassVar[str | None] = (
        "a folder holding the four Fashion-MNIST IDX files (default: ~/.cache/expfam/fashion-mnist)"
    )
    openml_name: ClassVar[str] = "Fashion-MNIST"
    download_page: ClassVar[str] = "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion)"


__all__ = ["RELEASE_FILES", "FashionMnist", "Mnist", "cache_folder"]
