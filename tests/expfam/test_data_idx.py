"""The IDX reader/writer and the ``idx`` dataset: round trips and every refusal, on tiny files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from expfam.data import DataSplit, Idx, read_idx, write_idx
from expfam.errors import ConfigurationError, DataError

HEIGHT, WIDTH = 3, 4


def make_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, HEIGHT, WIDTH), dtype=np.uint8)


def write_mnist_folder(
    folder: Path, *, gz: bool = False, n_train: int = 6, n_test: int = 4, dotted: bool = False
) -> dict[str, np.ndarray]:
    """Write the four MNIST-format files with random pixels and labels; return the arrays."""
    arrays = {
        "train-images-idx3-ubyte": make_images(n_train, 0),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": make_images(n_test, 1),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for base, array in arrays.items():
        name = base.replace("-idx", ".idx") if dotted else base
        write_idx(folder / (name + (".gz" if gz else "")), array, "images" if "images" in base else "labels")
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind, array", [("images", make_images(5, 2)), ("labels", np.array([0, 9, 3, 255]))])
def test_write_then_read_is_identity(tmp_path: Path, gz: bool, kind: str, array: np.ndarray) -> None:
    path = write_idx(tmp_path / ("file" + (".gz" if gz else "")), array, kind)  # type: ignore[arg-type]
    back = read_idx(path, kind=kind)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.uint8
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz


def test_header_layout_is_big_endian_magic_then_sizes(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.zeros((2, 3, 4), np.uint8), "images")
    raw = path.read_bytes()
    assert raw[:16] == bytes.fromhex("00000803000000020000000300000004")
    assert len(raw) == 16 + 24


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True), (True, True)])
def test_idx_loads_counts_and_labels(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = write_mnist_folder(tmp_path, gz=gz, dotted=dotted)
    split = Idx().load(path=tmp_path, n_trials=16)
    assert isinstance(split, DataSplit)
    assert split.x_train.shape == (6, HEIGHT * WIDTH) and split.x_test.shape == (4, HEIGHT * WIDTH)
    assert split.x_train.dtype == np.float64 and split.y_train.dtype == np.int64
    assert split.image_shape == (HEIGHT, WIDTH) and split.n_trials == 16 and split.name == "idx"
    pixels = arrays["train-images-idx3-ubyte"].reshape(6, -1).astype(np.int64)
    # round(v·16/255), half up; v·16/255 is never exactly half an integer.
    np.testing.assert_array_equal(split.x_train, np.floor(pixels * 16 / 255 + 0.5))
    np.testing.assert_array_equal(split.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(split.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_pixel_to_count_map_at_known_values(tmp_path: Path) -> None:
    images = np.array([[[0, 7, 8, 128], [247, 248, 254, 255], [0, 0, 0, 0]]], dtype=np.uint8)
    folder = tmp_path
    write_idx(folder / "train-images-idx3-ubyte", images, "images")
    write_idx(folder / "train-labels-idx1-ubyte", np.array([1]), "labels")
    write_idx(folder / "t10k-images-idx3-ubyte", images, "images")
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([2]), "labels")
    # 7·16/255 = 0.44 → 0; 8·16/255 = 0.50196 → 1; 128·16/255 = 8.03 → 8; 247 → 15.498 → 15; 248 → 15.56 → 16.
    expected = [0, 0, 1, 8, 15, 16, 16, 16, 0, 0, 0, 0]
    np.testing.assert_array_equal(Idx().load(path=folder, n_trials=16).x_train[0], expected)
    # N = 255 keeps the pixels; N = 1 thresholds at 127.5.
    np.testing.assert_array_equal(Idx().load(path=folder, n_trials=255).x_train[0], images.reshape(-1))
    np.testing.assert_array_equal(Idx().load(path=folder, n_trials=1).x_train[0], images.reshape(-1) >= 128)


def test_wrong_magic_names_file_and_guesses_the_swap(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path, gz=True)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(labels.read_bytes())
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte\.gz: magic number 0x00000801, expected 0x00000803 .*is this the labels file\?",
    ):
        Idx().load(path=tmp_path)


def test_not_an_idx_file(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match=r"page\.html: magic number 0x3c68746d.*not an IDX file"):
        read_idx(tmp_path / "page.html", kind="images")
    with pytest.raises(DataError, match=r"page\.html: magic number 0x3c68746d is not an IDX header"):
        read_idx(tmp_path / "page.html")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file(tmp_path: Path, gz: bool) -> None:
    write_mnist_folder(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = path.read_bytes()[:-5]
    path.unlink()
    target = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    target.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(
        DataError,
        match=r"t10k-images-idx3-ubyte(\.gz)?: header says shape \(4, 3, 4\) .* 43 bytes; the file is truncated",
    ):
        Idx().load(path=tmp_path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(100) % 10, "labels")
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: gzip data is corrupt or truncated"):
        read_idx(path, kind="labels")


def test_trailing_bytes_and_short_header(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", np.arange(3), "labels")
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(
        DataError, match=r"labels: header says shape \(3,\).*holds 4 bytes; the file has trailing bytes"
    ):
        read_idx(path, kind="labels")
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match=r"labels: only 2 bytes, too short for an IDX header"):
        read_idx(path)
    path.write_bytes(bytes.fromhex("0000080300000002"))
    with pytest.raises(DataError, match=r"header announces 3 dimensions but the file ends after 8 bytes"):
        read_idx(path, kind="images")


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(5), "labels")
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte holds 6 images but train-labels-idx1-ubyte holds 5 labels"
    ):
        Idx().load(path=tmp_path)


def test_train_and_test_image_sizes_must_agree(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8), "images")
    with pytest.raises(DataError, match=r"holds \(3, 4\) images but t10k-images-idx3-ubyte holds \(2, 2\) images"):
        Idx().load(path=tmp_path)


def test_missing_files_are_listed(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(
        DataError, match=r"missing 2 of the 4 MNIST-format files: train-images-idx3-ubyte or .*; t10k-labels-idx1-ubyte"
    ) as info:
        Idx().load(path=tmp_path)
    message = str(info.value)
    assert "train-images.idx3-ubyte.gz" in message  # the accepted variants are spelled out
    assert "train-labels-idx1-ubyte.gz" in message  # and what the folder does hold


def test_label_out_of_range(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 12, 3]), "labels")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 12 at row 2 is out of range 0\.\.9"):
        Idx().load(path=tmp_path)
    assert Idx(n_classes=None).load(path=tmp_path).y_test.tolist() == [1, 2, 12, 3]


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"path '.*nowhere' does not exist; expected a folder holding train-images"):
        Idx().load(path=tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match=r"dataset 'idx' needs a path .*--data PATH"):
        Idx().load()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"file: expected a folder holding the four MNIST-format IDX files, found a file"
    ):
        Idx().load(path=tmp_path / "file")


def test_the_files_fix_the_split(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    assert Idx.fixed_split
    default = Idx().load(path=tmp_path)
    other = Idx().load(path=tmp_path, test_fraction=0.5, seed=3)
    np.testing.assert_array_equal(default.x_test, other.x_test)
    np.testing.assert_array_equal(default.y_train, other.y_train)


def test_write_idx_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"images must be 3-D"):
        write_idx(tmp_path / "x", np.zeros((2, 3)), "images")
    with pytest.raises(DataError, match=r"whole numbers in 0\.\.255"):
        write_idx(tmp_path / "x", np.array([256]), "labels")


def test_label_files_are_optional_together(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path)
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).unlink()
    split = Idx().load(path=tmp_path)
    assert not split.has_labels and split.x_train.shape[0] > 0 and split.y_test is None
