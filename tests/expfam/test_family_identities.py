"""The MODEL.md §1 identities, checked with the test kit on every registered family.

Parametrised over the registry, so a newly registered family (entry point
included) gets these tests without editing this file. Exact identities are
checked by enumeration where the support is small and discrete; the kit falls
back to Monte Carlo (|z| < 5) otherwise.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expfam.family import ExponentialFamily
from expfam.plugins import get_registry
from expfam.testing import (
    SCIPY_REFERENCES,
    check_against_scipy,
    check_conjugate_duality,
    check_convexity,
    check_entropy,
    check_family,
    check_fisher_information,
    check_fit_recovers,
    check_kl,
    check_mean_map,
    check_normalisation,
    check_round_trips,
    check_sampling,
    integer_support,
)
from expfam.testing.strategies import (
    natural_params,
    observations,
    sized_family,
    smallest_size,
    unconstrained,
)

REGISTRY = get_registry()
FAMILY_NAMES = REGISTRY.names("families")
KEY = jax.random.key(20240611)

# Shapes stay small: every new (family, size) compiles the checks once.
MAX_SIZE = 2


def family_with_points(name: str, *, scale: float = 3.0) -> st.SearchStrategy[tuple[ExponentialFamily, object, object]]:
    """A small instance of the registered family ``name`` with two interior natural-parameter points."""
    return sized_family(REGISTRY.family(name), max_size=MAX_SIZE).flatmap(
        lambda family: st.tuples(
            st.just(family), natural_params(family, scale=scale), natural_params(family, scale=scale)
        )
    )


def fixed_family(name: str) -> ExponentialFamily:
    """The registered family ``name`` at its smallest size of at least 2 (sampling tests compile once)."""
    cls = REGISTRY.family(name)
    return cls(max(2, smallest_size(cls)), **cls.example_options)


def is_enumerable(family: ExponentialFamily) -> bool:
    return integer_support(family) is not None


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_mean_map_is_expected_statistic(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, _ = case
        assert check_mean_map(family, params, key=KEY)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_normalisation_by_enumeration(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, _ = case
        assert check_normalisation(family, params) is is_enumerable(family)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_entropy_is_expected_surprise(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, _ = case
        assert check_entropy(family, params, key=KEY)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_log_partition_is_convex_along_lines(name: str) -> None:
    @given(case=family_with_points(name), data=st.data())
    def run(case: tuple, data: st.DataObject) -> None:
        family, params, _ = case
        direction = data.draw(unconstrained(family.param_shape, scale=2.0), label="direction")
        assert check_convexity(family, params, direction)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_conjugate_duality(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, other = case
        assert check_conjugate_duality(family, params, other)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_mean_map_round_trips(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, other = case
        assert check_round_trips(family, params, other)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_fisher_information(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, _ = case
        assert check_fisher_information(family, params)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_kl_divergence(name: str) -> None:
    @given(case=family_with_points(name))
    def run(case: tuple) -> None:
        family, params, other = case
        assert check_kl(family, params, other, key=KEY)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_against_scipy(name: str) -> None:
    if name not in SCIPY_REFERENCES:
        pytest.skip(f"scipy.stats has no reference for the family {name!r}")

    @given(case=family_with_points(name), data=st.data())
    def run(case: tuple, data: st.DataObject) -> None:
        family, params, _ = case
        batch = data.draw(st.lists(observations(family), min_size=1, max_size=4), label="x")
        assert check_against_scipy(family, params, np.stack(batch))

    run()


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_sampling_matches_mean_map(name: str) -> None:
    family = fixed_family(name)

    @settings(max_examples=5)
    @given(params=natural_params(family))
    def run(params: object) -> None:
        assert check_sampling(family, params, key=KEY)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_fit_recovers_parameters(name: str) -> None:
    family = fixed_family(name)

    @settings(max_examples=5)
    @given(params=natural_params(family, scale=2.0))
    def run(params: object) -> None:
        assert check_fit_recovers(family, params, key=KEY)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_check_family_runs_every_applicable_check(name: str) -> None:
    family = fixed_family(name)
    params = family.natural_from_unconstrained(np.linspace(-1.0, 1.0, family.dim).reshape(family.param_shape))
    report = check_family(family, params, key=KEY)
    not_applicable = {name for name, ran in report.items() if not ran}
    expected = set() if is_enumerable(family) else {"normalisation"}
    if name not in SCIPY_REFERENCES:
        expected.add("scipy")
    assert not_applicable == expected
