"""Data outside a family's support is refused with the offending column and value; bad options are refused."""

from __future__ import annotations

import numpy as np
import pytest

from expfam.errors import ConfigurationError, SupportError
from expfam.families import Bernoulli, Binomial, Categorical, DiagonalNormal, Poisson
from expfam.family import ExponentialFamily
from expfam.plugins import get_registry
from expfam.testing.strategies import smallest_size

REGISTRY = get_registry()
FAMILY_NAMES = REGISTRY.names("families")


def small(name: str) -> ExponentialFamily:
    cls = REGISTRY.family(name)
    return cls(max(2, smallest_size(cls)), **cls.example_options)


def valid_rows(family: ExponentialFamily, count: int = 3) -> np.ndarray:
    """``count`` observations of zeros, which every built-in support contains."""
    return np.zeros((count, *family.data_shape))


@pytest.mark.parametrize(
    ("family", "row", "column", "value"),
    [
        (Binomial(3, n_trials=4), [0.0, -1.0, 2.0], 1, "-1.0"),
        (Binomial(3, n_trials=4), [0.0, 1.0, 1.5], 2, "1.5"),
        (Binomial(3, n_trials=4), [5.0, 1.0, 1.0], 0, "5.0"),
        (Binomial(3, n_trials=4), [0.0, np.nan, 1.0], 1, "nan"),
        (Binomial(3, n_trials=4), [np.inf, 0.0, 1.0], 0, "inf"),
        (Bernoulli(2), [0.0, 2.0], 1, "2.0"),
        (Bernoulli(2), [0.5, 1.0], 0, "0.5"),
        (Poisson(2), [3.0, -2.0], 1, "-2.0"),
        (Poisson(2), [0.25, 1.0], 0, "0.25"),
        (Poisson(2), [1.0, -np.inf], 1, "-inf"),
        (DiagonalNormal(2), [0.3, np.nan], 1, "nan"),
        (DiagonalNormal(2), [np.inf, 0.0], 0, "inf"),
    ],
)
def test_value_outside_support_names_column_and_value(
    family: ExponentialFamily, row: list[float], column: int, value: str
) -> None:
    data = np.array([[0.0] * family.size, row])
    with pytest.raises(
        SupportError, match=rf"value {value} at column {column} of row 1 is outside the support of {family.name}"
    ):
        family.check_support(data, what="train.npz")


def test_message_names_the_data_source_and_the_expected_support() -> None:
    with pytest.raises(SupportError, match=r"^train\.npz: .*expected an integer count between 0 and n_trials=4"):
        Binomial(2, n_trials=4).check_support(np.array([[0.0, 7.0]]), what="train.npz")


def test_error_carries_the_offending_index_and_value() -> None:
    with pytest.raises(SupportError) as caught:
        Binomial(3, n_trials=4).check_support(np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 9.0]]))
    assert caught.value.offending == ((1, 2), 9.0)


@pytest.mark.parametrize("value", ["-1.0", "3.0", "1.5", "nan", "inf"])
def test_category_out_of_range(value: str) -> None:
    data = np.array([0.0, 2.0, float(value)])
    with pytest.raises(SupportError, match=rf"value {value} at entry \(2,\) .*between 0 and 2"):
        Categorical(3).check_support(data)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_zeros_are_accepted(name: str) -> None:
    family = small(name)
    family.check_support(valid_rows(family))
    family.check_support(valid_rows(family)[0])


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_nan_is_refused_by_every_family(name: str) -> None:
    family = small(name)
    data = valid_rows(family)
    data.reshape(len(data), -1)[1, -1] = np.nan
    with pytest.raises(SupportError, match=r"value nan at .*outside the support"):
        family.check_support(data)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_wrong_shape_is_refused(name: str) -> None:
    family = small(name)
    if family.data_shape == ():
        pytest.skip(f"{name} observations are scalars: every array is a batch of them")
    data = np.zeros((4, family.data_dim + 1))
    with pytest.raises(
        SupportError,
        match=rf"has shape \(4, {family.data_dim + 1}\), but {name} of size {family.size} expects observations of shape",
    ):
        family.check_support(data)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Categorical(1), r"Categorical: size \(the number of categories\) must be an integer ≥ 2, got 1"),
        (lambda: Categorical(0), r"must be an integer ≥ 2, got 0"),
        (lambda: Binomial(3, n_trials=0), r"Binomial: n_trials must be a positive integer, got 0"),
        (lambda: Binomial(3, n_trials=2.5), r"Binomial: n_trials must be a positive integer, got 2.5"),
        (lambda: Binomial(0), r"Binomial: size must be a positive integer, got 0"),
        (lambda: Bernoulli(-1), r"Bernoulli: size must be a positive integer, got -1"),
        (lambda: Poisson(True), r"Poisson: size must be a positive integer, got True"),
        (lambda: DiagonalNormal(0), r"DiagonalNormal: size must be a positive integer, got 0"),
    ],
)
def test_invalid_options_are_configuration_errors(build: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build()  # type: ignore[operator]
