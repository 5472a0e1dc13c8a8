"""Entry-point plugin registering the built-in dataset loaders (the `expfam` group)."""

from __future__ import annotations

from expfam.data.dataset import Dataset
from expfam.data.digits import Digits
from expfam.data.idx import Idx
from expfam.data.mnist import FashionMnist, Mnist
from expfam.data.npz import Npz
from expfam.data.openml import OpenML
from expfam.hookspecs import hookimpl


@hookimpl
def expfam_datasets() -> list[Dataset]:
    """`digits` (bundled, the default), `idx` and `npz` (files you give), `openml` (download),
    `mnist` and `fashion-mnist` (IDX files in a folder or the cache, else OpenML)."""
    return [Digits(), Idx(), Npz(), OpenML(), Mnist(), FashionMnist()]
