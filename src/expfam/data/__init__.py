"""Datasets: loaders registered as plugins, returning counts for a Binomial(D, N) observable.

Built-in loaders: `digits` (scikit-learn's bundled 8×8 digits, no download), `idx`
(a folder of MNIST-format files), `npz` (an archive), `openml` (MNIST downloaded
on request), `mnist` and `fashion-mnist` (the IDX files from a folder or the cache,
else OpenML). Look one up by name with [`load_dataset`][expfam.data.dataset.load_dataset].

Examples:
    >>> from expfam.data import Digits
    >>> split = Digits().load(n_trials=16, seed=0)
    >>> split.x_train.shape, int(split.x_train.max())
    ((1437, 64), 16)
"""

from expfam.data.dataset import Dataset, check_data_for_family, load_dataset
from expfam.data.digits import Digits
from expfam.data.idx import Idx, read_idx, write_idx
from expfam.data.mnist import FashionMnist, Mnist
from expfam.data.npz import Npz
from expfam.data.openml import OpenML
from expfam.data.split import DataSplit, counts_from_intensities

__all__ = [
    "DataSplit",
    "Dataset",
    "Digits",
    "FashionMnist",
    "Idx",
    "Mnist",
    "Npz",
    "OpenML",
    "check_data_for_family",
    "counts_from_intensities",
    "load_dataset",
    "read_idx",
    "write_idx",
]
