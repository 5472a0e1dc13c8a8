"""The cheap softplus / sigmoid of ``expfam.families.softplus`` against XLA's plain forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.families.binomial import Binomial, log_binomial_coefficient
from expfam.families.softplus import sigmoid, softplus

# float32 inputs (the dtype is kept under x64 too). Dense grid, plus the large-|x| tails where log1p/exp lose range if written naively.
X = np.concatenate(
    [
        np.linspace(-30.0, 30.0, 20001),
        np.array([0.0, -0.0, 1e-8, -1e-8, 80.0, -80.0, 100.0, -100.0, 1e4, -1e4, 3e38, -3e38]),
    ]
).astype(np.float32)


def reference(f, x):
    """The plain form in float64, as the ground truth."""
    return np.asarray(f(np.asarray(x, np.float64)))


def plain_softplus(x):
    return np.logaddexp(x, 0.0)


def plain_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# float32 rounding relative to O(1) values; XLA's own exp carries ~3e-4 relative error
# near e^-30 (≈1e-13), far below this absolute floor, and the plain forms share it.
ATOL = 1e-10


def test_softplus_matches_plain_form_to_float32_precision() -> None:
    ours = np.asarray(jax.jit(softplus)(X), np.float64)
    xla = np.asarray(jax.jit(jax.nn.softplus)(X), np.float64)
    np.testing.assert_allclose(ours, reference(plain_softplus, X), rtol=2.5e-7, atol=ATOL)
    np.testing.assert_allclose(ours, xla, rtol=2.5e-7, atol=ATOL)
    assert ours[X == 3e38][0] == pytest.approx(3e38, rel=1e-7) and ours[X == -3e38][0] == 0.0


def test_sigmoid_matches_plain_form_to_float32_precision() -> None:
    ours = np.asarray(jax.jit(sigmoid)(X), np.float64)
    np.testing.assert_allclose(ours, reference(plain_sigmoid, X), rtol=2.5e-7, atol=ATOL)
    np.testing.assert_allclose(ours, np.asarray(jax.nn.sigmoid(X), np.float64), rtol=2.5e-7, atol=ATOL)


def test_gradient_of_softplus_is_sigmoid() -> None:
    grad = np.asarray(jax.jit(jax.vmap(jax.grad(softplus)))(X), np.float64)
    np.testing.assert_allclose(grad, reference(plain_sigmoid, X), rtol=2.5e-7, atol=ATOL)
    plain = np.asarray(jax.jit(jax.vmap(jax.grad(jax.nn.softplus)))(X), np.float64)
    np.testing.assert_allclose(grad, plain, rtol=1e-6, atol=ATOL)  # XLA's own is off by up to 5.4e-7


def test_second_derivative_is_sigmoid_times_its_complement_including_zero() -> None:
    second = np.asarray(jax.jit(jax.vmap(jax.grad(jax.grad(softplus))))(X), np.float64)
    s = reference(plain_sigmoid, X)
    # σ(1 − σ) cancels in float32 for large x: absolute precision ~ one ulp of 1
    np.testing.assert_allclose(second, s * (1.0 - s), rtol=1e-6, atol=1.2e-7)
    assert float(jax.grad(jax.grad(softplus))(0.0)) == pytest.approx(0.25, rel=1e-7)


def test_no_nan_or_inf_at_extreme_inputs() -> None:
    values = [softplus(X), sigmoid(X), jax.vmap(jax.grad(softplus))(X), jax.vmap(jax.grad(sigmoid))(X)]
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in values)


def test_binomial_log_base_measure_table_equals_formula() -> None:
    family = Binomial(size=6, n_trials=16)
    x = np.array([0, 1, 7, 8, 15, 16], np.float32)
    formula = float(jnp.sum(log_binomial_coefficient(16, jnp.asarray(x))))
    assert float(family.log_base_measure(x)) == pytest.approx(formula, rel=1e-6)
    assert float(family.log_base_measure(np.zeros(6, np.float32))) == 0.0
