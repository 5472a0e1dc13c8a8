"""The ``digits`` dataset: bundled, stratified, deterministic, and exact counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from expfam.data import Digits
from expfam.errors import ConfigurationError


@pytest.fixture(scope="module")
def original() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_digits(return_X_y=True)
    return images, labels


def sorted_rows(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])]


def test_shapes_and_values() -> None:
    split = Digits().load()
    assert split.x_train.shape == (1437, 64) and split.x_test.shape == (360, 64)
    assert split.image_shape == (8, 8) and split.n_trials == 16 and split.name == "digits"
    both = np.concatenate([split.x_train, split.x_test])
    assert set(np.unique(both)) <= set(range(17)) and both.max() == 16


def test_split_is_a_partition_of_the_bundled_data(original: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = original
    split = Digits().load(seed=3)
    # Train ∪ test equals the data as a multiset of (image, label) rows: disjoint and complete.
    joined = np.column_stack(
        [np.concatenate([split.x_train, split.x_test]), np.concatenate([split.y_train, split.y_test])]
    )
    np.testing.assert_array_equal(sorted_rows(joined), sorted_rows(np.column_stack([images, labels])))


def test_split_is_stratified(original: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = original
    split = Digits().load(seed=1)
    expected = np.bincount(labels) * 0.2
    assert np.all(np.abs(np.bincount(split.y_test) - expected) <= 1.0)


def test_split_is_deterministic_per_seed() -> None:
    first, again, other = Digits().load(seed=7), Digits().load(seed=7), Digits().load(seed=8)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.y_test, other.y_test)


def test_test_fraction() -> None:
    split = Digits().load(test_fraction=0.5)
    assert len(split.y_test) in (898, 899)
    with pytest.raises(ConfigurationError, match=r"test_fraction must lie strictly between 0 and 1, got 1\.5"):
        Digits().load(test_fraction=1.5)
    with pytest.raises(ConfigurationError, match=r"test_fraction=0\.001 cannot be split by class"):
        Digits().load(test_fraction=0.001)


def test_counts_for_other_trial_counts(original: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = original
    split = Digits().load(n_trials=8)
    both = np.concatenate([split.x_train, split.x_test])
    assert both.min() == 0 and both.max() == 8
    # v·8/16 = v/2, rounded half up: 1 → 1, 2 → 1, 3 → 2, 16 → 8.
    expected = np.floor(images / 2 + 0.5)
    np.testing.assert_array_equal(sorted_rows(both), sorted_rows(expected))


def test_refuses_a_path_and_bad_n_trials(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match=r"dataset 'digits' takes no path"):
        Digits().load(path="somewhere")
    with pytest.raises(ConfigurationError, match=r"n_trials must be a positive integer, got 0"):
        Digits().load(n_trials=0)
