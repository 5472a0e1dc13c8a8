"""Tolerances and assertion helpers shared by the test kit.

Every check works in float64 (the tolerances below assume it) and raises
`AssertionError` with a message that names the identity, the tolerance
and the worst offending entry.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

Z_LIMIT: float = 5.0
"""Largest accepted |z|-score of a Monte Carlo estimate.

A two-sided normal tail beyond 5 has probability 5.7e-7, so a check over 20
coordinates raises a false alarm with probability below 1.2e-5.
"""

EXACT_RTOL: float = 1e-8
"""Relative tolerance of identities that hold exactly in float64 arithmetic."""

EXACT_ATOL: float = 1e-9
"""Absolute tolerance of identities that hold exactly in float64 arithmetic."""


def require_x64() -> None:
    """Refuse to run a check in float32, where the stated tolerances do not hold.

    Raises:
        RuntimeError: when JAX's default float is not float64.
    """
    if jnp.result_type(float) != jnp.float64:
        raise RuntimeError(
            "the expfam test kit needs float64, but JAX's default float is "
            f"{jnp.result_type(float)}; call jax.config.update('jax_enable_x64', True) "
            "in your conftest.py before running the checks"
        )


def assert_close(
    what: str,
    actual: object,
    expected: object,
    *,
    rtol: float = EXACT_RTOL,
    atol: float = EXACT_ATOL,
) -> None:
    """Assert `|actual − expected| ≤ atol + rtol·|expected|` entrywise (NaN fails).

    Args:
        what: the identity being checked, used as the message's first words.
        actual: the value computed by the code under test.
        expected: the reference value.
        rtol: relative tolerance.
        atol: absolute tolerance.
    """
    actual_array = np.asarray(actual, dtype=float)
    expected_array = np.asarray(expected, dtype=float)
    if actual_array.shape != expected_array.shape:
        raise AssertionError(f"{what}: shape {actual_array.shape} differs from the expected {expected_array.shape}")
    error = np.abs(actual_array - expected_array)
    bound = atol + rtol * np.abs(expected_array)
    bad = ~(error <= bound)
    if not bad.any():
        return
    worst = np.unravel_index(np.nanargmax(np.where(bad, error - bound, -np.inf)), error.shape)
    raise AssertionError(
        f"{what}: entry {tuple(int(i) for i in worst)} is {actual_array[worst].item()!r}, expected "
        f"{expected_array[worst].item()!r} (|difference| {error[worst]:.3g} > atol={atol:g} + rtol={rtol:g}·|expected|); "
        f"{int(bad.sum())} of {bad.size} entries out of tolerance"
    )


def assert_at_least(what: str, value: object, lower: float, *, tol: float) -> None:
    """Assert `value ≥ lower − tol` entrywise (NaN fails)."""
    array = np.asarray(value, dtype=float)
    bad = ~(array >= lower - tol)
    if bad.any():
        worst = np.unravel_index(np.nanargmin(np.where(bad, array, np.inf)), array.shape) if array.ndim else ()
        raise AssertionError(f"{what}: found {array[worst].item()!r}, expected ≥ {lower:g} (tolerance {tol:g})")


def assert_z_scores(
    what: str, estimate: object, expected: object, standard_error: object, *, limit: float = Z_LIMIT
) -> None:
    """Assert every `|z| = |estimate − expected| / standard_error` is below `limit`.

    A standard error of zero (a degenerate coordinate) demands an exact match
    up to `EXACT_ATOL`.
    """
    estimate_array = np.asarray(estimate, dtype=float)
    expected_array = np.broadcast_to(np.asarray(expected, dtype=float), estimate_array.shape)
    error = np.broadcast_to(np.asarray(standard_error, dtype=float), estimate_array.shape)
    difference = estimate_array - expected_array
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            error > 0,
            difference / np.where(error > 0, error, 1.0),
            np.where(np.abs(difference) <= EXACT_ATOL, 0.0, np.inf),
        )
    bad = ~(np.abs(z) < limit)
    if bad.any():
        worst = np.unravel_index(np.nanargmax(np.where(bad, np.abs(np.nan_to_num(z, nan=np.inf)), -1.0)), z.shape)
        raise AssertionError(
            f"{what}: entry {tuple(int(i) for i in worst)} has z = {z[worst]:.2f} (estimate {estimate_array[worst].item()!r}, "
            f"expected {expected_array[worst].item()!r}, standard error {error[worst]:.3g}); accepted |z| < {limit:g}"
        )
