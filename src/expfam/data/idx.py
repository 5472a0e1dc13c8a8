"""MNIST-format IDX files: a reader and writer in numpy, and the `idx` dataset.

An IDX file is a 4-byte magic number `0x0000TTNN` (`TT` the element type,
`NN` the number of dimensions), `NN` big-endian uint32 sizes, then the
elements in C order. MNIST images are `0x00000803` (unsigned bytes, 3-D:
count × rows × columns) and labels `0x00000801` (unsigned bytes, 1-D). Files may
be gzipped; compression is detected from the content, not the name.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, final

import numpy as np

from expfam.data.dataset import Dataset
from expfam.data.split import DataSplit, counts_from_intensities, flat_images
from expfam.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}
_DESCRIPTION = {
    "images": "an IDX image file: unsigned bytes, 3 dimensions",
    "labels": "an IDX label file: unsigned bytes, 1 dimension",
}
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_SIGNATURE = b"\x1f\x8b"

#: The four files of an MNIST-format folder: (split, kind) → base name.
IDX_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})", offending=str(path)) from error
    if raw[:2] != _GZIP_SIGNATURE:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path.name}: gzip data is corrupt or truncated ({error}); download the file again",
            offending=str(path),
        ) from error


def read_idx(path: str | Path, *, kind: Literal["images", "labels"] | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array.

    Args:
        path: the file.
        kind: when given, the magic number must be that of MNIST `images`
            (`0x00000803`) or `labels` (`0x00000801`).

    Returns:
        The array, of the header's shape and element type (native byte order).

    Raises:
        DataError: naming the file, for a bad magic number, a truncated file or trailing bytes.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{path.name}: only {len(data)} bytes, too short for an IDX header; the file is empty or truncated",
            offending=str(path),
        )
    magic = int.from_bytes(data[:4], "big")
    type_code, n_dims = data[2], data[3]
    if kind is not None and magic != _MAGIC[kind]:
        other = "labels" if kind == "images" else "images"
        if magic == _MAGIC[other]:
            hint = f"is this the {other} file?"
        elif data[:2] != b"\x00\x00":
            hint = "this is not an IDX file (an HTML page or another archive format?)"
        else:
            hint = f"the file holds {n_dims}-D data of type code 0x{type_code:02x}"
        raise DataError(
            f"{path.name}: magic number 0x{magic:08x}, expected 0x{_MAGIC[kind]:08x} ({_DESCRIPTION[kind]}); {hint}",
            offending=magic,
        )
    if data[:2] != b"\x00\x00" or type_code not in _DTYPES:
        raise DataError(
            f"{path.name}: magic number 0x{magic:08x} is not an IDX header "
            f"(expected 0x0000TTNN with type code TT in {sorted(f'0x{c:02x}' for c in _DTYPES)})",
            offending=magic,
        )
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise DataError(
            f"{path.name}: header announces {n_dims} dimensions but the file ends after {len(data)} bytes; "
            "the file is truncated",
            offending=str(path),
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        problem = "the file is truncated" if found < expected else "the file has trailing bytes"
        raise DataError(
            f"{path.name}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{found} bytes; {problem}",
            offending=(shape, found),
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, kind: Literal["images", "labels"]) -> Path:
    """Write unsigned-byte `images` (3-D) or `labels` (1-D) as an IDX file; gzip when `path` ends in `.gz`.

    Meant for tests and examples: it makes the small files [`Idx`][expfam.data.idx.Idx] reads.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([3, 1, 4]), "labels")
        >>> read_idx(folder / "t10k-labels-idx1-ubyte.gz", kind="labels")
        array([3, 1, 4], dtype=uint8)
    """
    if kind not in _MAGIC:
        raise DataError(f"write_idx: kind must be 'images' or 'labels', got {kind!r}", offending=kind)
    values = np.asarray(array)
    wanted = 3 if kind == "images" else 1
    if values.ndim != wanted:
        raise DataError(f"write_idx: {kind} must be {wanted}-D, got shape {values.shape}", offending=values.shape)
    if values.size and (values.min() < 0 or values.max() > 255 or not np.array_equal(values, np.round(values))):
        raise DataError(f"write_idx: {kind} must be whole numbers in 0..255", offending=kind)
    header = _MAGIC[kind].to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in values.shape)
    payload = header + values.astype(np.uint8).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def _candidates(base: str) -> list[str]:
    stem, format_tag, element = base.rsplit("-", 2)
    dotted = f"{stem}.{format_tag}-{element}"  # train-images-idx3-ubyte → train-images.idx3-ubyte
    return [name + suffix for suffix in ("", ".gz") for name in (base, dotted)]


def find_idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    """Locate the MNIST-format files in `folder`, or raise listing what is missing.

    The two image files are required; the two label files are optional together
    (neither: unlabelled data, only the label-free metrics are reported).
    """
    if not folder.is_dir():
        raise DataError(
            f"{folder}: expected a folder holding the four MNIST-format IDX files, found a file; "
            "pass the folder that contains it",
            offending=str(folder),
        )
    found: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for key, base in IDX_FILES.items():
        names = _candidates(base)
        hits = [folder / name for name in names if (folder / name).is_file()]
        if hits:
            found[key] = hits[0]
        else:
            missing.append(" or ".join(names))
    label_keys = [key for key in IDX_FILES if key[1] == "labels"]
    if len(missing) == 2 and not any(key in found for key in label_keys):
        return found  # both label files absent: unlabelled data
    if missing:
        present = sorted(p.name for p in folder.iterdir())[:10]
        raise DataError(
            f"{folder}: missing {len(missing)} of the 4 MNIST-format files: "
            + "; ".join(missing)
            + f". Expected {', '.join(IDX_FILES.values())} (each optionally .gz); "
            f"the folder holds {present or 'nothing'}",
            offending=missing,
        )
    return found


def check_labels(labels: np.ndarray, *, where: str, n_classes: int | None) -> None:
    """Raise a [`DataError`][expfam.errors.DataError] for a label that is negative or not below `n_classes`."""
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        index = int(np.argmax(labels < 0))
        raise DataError(f"{where}: label {low} at row {index} is negative; labels must be 0, 1, 2, ...", offending=low)
    if n_classes is not None and high >= n_classes:
        index = int(np.argmax(labels >= n_classes))
        raise DataError(
            f"{where}: label {high} at row {index} is out of range 0..{n_classes - 1} "
            f"(n_classes={n_classes}); for data with more classes construct the loader with n_classes=...",
            offending=high,
        )


@final
@dataclass(frozen=True)
class Idx(Dataset):
    """A folder with the four MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, ...).

    Attributes:
        n_classes: labels must lie in `0..n_classes-1` (`None`: any non-negative label).
    """

    name: ClassVar[str] = "idx"
    description: ClassVar[str] = "a folder of MNIST-format IDX files (gzipped or not), e.g. MNIST or Fashion-MNIST"
    needs_path: ClassVar[bool] = True
    path_meaning: ClassVar[str | None] = (
        "a folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
        "and t10k-labels-idx1-ubyte, each optionally .gz (the two label files may be left out)"
    )
    fixed_split: ClassVar[bool] = True

    n_classes: int | None = 10

    def read(self, path: Path | None, *, n_trials: int, seed: int, test_fraction: float) -> DataSplit:
        assert path is not None  # load() refuses a missing path
        files = find_idx_files(path)
        arrays: dict[str, np.ndarray | None] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for part in ("train", "test"):
            images_file = files[(part, "images")]
            images = read_idx(images_file, kind="images")
            shapes[part] = images.shape[1:]
            arrays[f"x_{part}"] = counts_from_intensities(
                flat_images(images, where=images_file.name), n_trials=n_trials, max_value=255
            )
            arrays[f"y_{part}"] = None
            if (part, "labels") not in files:
                continue
            labels_file = files[(part, "labels")]
            labels = read_idx(labels_file, kind="labels")
            if images.shape[0] != labels.shape[0]:
                raise DataError(
                    f"{images_file.name} holds {images.shape[0]} images but {labels_file.name} holds "
                    f"{labels.shape[0]} labels; the files must come from the same release",
                    offending=(images.shape[0], labels.shape[0]),
                )
            check_labels(labels, where=labels_file.name, n_classes=self.n_classes)
            arrays[f"y_{part}"] = labels.astype(np.int64)
        if shapes["train"] != shapes["test"]:
            raise DataError(
                f"{files[('train', 'images')].name} holds {shapes['train']} images but "
                f"{files[('test', 'images')].name} holds {shapes['test']} images; both must have one size",
                offending=(shapes["train"], shapes["test"]),
            )
        height, width = shapes["train"]
        return DataSplit.from_parts(
            arrays, name=self.name, n_trials=n_trials, image_shape=(height, width), source=str(path)
        )
