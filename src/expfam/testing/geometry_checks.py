r"""Convex-duality identity checks of one exponential family.

`ψ` is convex, its gradient (the mean map) is inverted by
`natural_from_means`, its Hessian is the Fisher information, and the
negative entropy `φ` is its convex conjugate. Each check returns `True`
and raises `AssertionError`, naming the identity and the tolerance,
when the identity fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from expfam.family import Array, ExponentialFamily, vdot
from expfam.testing._assertions import (
    EXACT_ATOL,
    assert_at_least,
    assert_close,
    require_x64,
)
from expfam.testing.enumeration import DEFAULT_MAX_POINTS, enumerate_distribution
from expfam.testing.family_checks import roundoff


@jax.jit
def _line(family: ExponentialFamily, params: Array, direction: Array, step: Array) -> tuple[Array, Array]:
    """`ψ(θ + t·step·d)` at `t = −2..2`, and `d²/dt² ψ(θ + t d)` at `t = 0` by autodiff."""

    def slope(t: Array) -> Array:
        return jax.jvp(family.log_partition, (params + t * direction,), (direction,))[1]

    values = jnp.stack([family.log_partition(params + t * step * direction) for t in range(-2, 3)])
    return values, jax.grad(slope)(jnp.zeros(()))


def check_convexity(family: ExponentialFamily, params: ArrayLike, direction: ArrayLike) -> bool:
    r"""`t ↦ ψ(θ + t·d)` is convex.

    Checks `d²/dt² ψ(θ + t d)|₀ ≥ 0` by autodiff and the second differences
    `ψ(t−h) − 2ψ(t) + ψ(t+h) ≥ 0` at `t = −h, 0, h` for the largest
    `h = 2^{−j}` (`j ≥ 1`) keeping the segment inside the parameter space
    (`ψ` finite), each up to roundoff `1e3·eps·(1 + max|ψ|)`.
    """
    require_x64()
    name = family.describe()
    direction = np.asarray(direction, dtype=float)
    step = 0.5
    values, curvature = map(np.asarray, _line(family, params, direction, step))
    while not np.isfinite(values).all():
        step /= 2
        if step < 1e-12:
            raise AssertionError(f"{name}: ψ is not finite on any segment θ ± h·d around θ = {params}")
        values, curvature = map(np.asarray, _line(family, params, direction, step))
    scale = roundoff(values) * (1.0 + float(np.sum(direction**2)))
    assert_at_least(f"{name}: directional second derivative of ψ", curvature, 0.0, tol=scale)
    second_differences = values[:-2] - 2 * values[1:-1] + values[2:]
    assert_at_least(f"{name}: second differences of ψ along a line", second_differences, 0.0, tol=roundoff(values))
    return True


@jax.jit
def _duality_terms(family: ExponentialFamily, params: Array, other: Array) -> dict[str, Array]:
    means = family.means(params)
    other_means = family.means(other)
    psi = family.log_partition(params)
    return {
        "pairing": vdot(params, means),
        "total": psi + family.negative_entropy(means),
        "dual_gradient": jax.grad(family.negative_entropy)(means),
        "gap": psi + family.negative_entropy(other_means) - vdot(params, other_means),
        "other_pairing": vdot(params, other_means),
    }


def check_conjugate_duality(family: ExponentialFamily, params: Array, other: Array) -> bool:
    r"""Legendre duality of `ψ` and `φ`.

    * `ψ(θ) + φ(∇ψ(θ)) = θ·∇ψ(θ)` (equality in Fenchel–Young), up to roundoff;
    * `∇φ(η) = θ` at `η = ∇ψ(θ)` (`rtol = atol = 1e-7`);
    * `ψ(θ) + φ(η′) ≥ θ·η′` for `η′ = ∇ψ(θ′)` (Fenchel–Young), up to roundoff.
    """
    require_x64()
    name = family.describe()
    terms = jax.device_get(_duality_terms(family, params, other))
    assert_close(
        f"{name}: ψ(θ) + φ(∇ψ(θ)) = θ·∇ψ(θ)",
        terms["total"],
        terms["pairing"],
        atol=roundoff(terms["pairing"], terms["total"]),
    )
    assert_close(f"{name}: ∇φ(∇ψ(θ)) = θ", terms["dual_gradient"], params, rtol=1e-7, atol=1e-7)
    assert_at_least(
        f"{name}: Fenchel–Young gap ψ(θ) + φ(η′) − θ·η′",
        terms["gap"],
        0.0,
        tol=roundoff(terms["other_pairing"], terms["pairing"]),
    )
    return True


@jax.jit
def _round_trips(family: ExponentialFamily, params: Array, other: Array) -> tuple[Array, Array, Array]:
    means = family.means(other)
    return family.natural_from_means(family.means(params)), means, family.means(family.natural_from_means(means))


def check_round_trips(family: ExponentialFamily, params: Array, other: Array) -> bool:
    r"""`(∇ψ)⁻¹(∇ψ(θ)) = θ` and `∇ψ((∇ψ)⁻¹(η)) = η` at `η = ∇ψ(θ′)` (`rtol = atol = 1e-7`)."""
    require_x64()
    name = family.describe()
    back, means, means_back = jax.device_get(_round_trips(family, params, other))
    assert_close(f"{name}: θ → η → θ", back, params, rtol=1e-7, atol=1e-7)
    assert_close(f"{name}: η → θ → η", means_back, means, rtol=1e-7, atol=1e-7)
    return True


@jax.jit
def _fisher_terms(family: ExponentialFamily, params: Array) -> tuple[Array, Array, Array]:
    def flat_means(flat: Array) -> Array:
        return jnp.ravel(family.means(jnp.reshape(flat, family.param_shape)))

    fisher = family.fisher_information(params)
    return fisher, jax.jacfwd(flat_means)(jnp.ravel(params)), jnp.linalg.eigvalsh(fisher)


def check_fisher_information(family: ExponentialFamily, params: Array, *, max_points: int = DEFAULT_MAX_POINTS) -> bool:
    r"""`I(θ) = ∇²ψ(θ)` is symmetric, positive semi-definite, and the Jacobian of the mean map.

    By enumeration it also equals `Cov_θ[s(x)]`. Tolerances are
    `rtol = 1e-8` and `atol = 1e-9·(1 + max|I|)`.
    """
    require_x64()
    name = family.describe()
    fisher, jacobian, eigenvalues = jax.device_get(_fisher_terms(family, params))
    if fisher.shape != (family.dim, family.dim):
        raise AssertionError(f"{name}: Fisher information has shape {fisher.shape}, expected {(family.dim,) * 2}")
    atol = EXACT_ATOL * (1.0 + float(np.max(np.abs(fisher))))
    assert_close(f"{name}: I(θ) symmetric", fisher, fisher.T, rtol=0.0, atol=atol)
    assert_at_least(f"{name}: eigenvalues of I(θ)", eigenvalues, 0.0, tol=atol)
    assert_close(f"{name}: I(θ) = ∂η/∂θ", fisher, jacobian, atol=atol)
    table = enumerate_distribution(family, params, max_points=max_points)
    if table is not None:
        centred = table.statistics.reshape(-1, family.dim) - table.expectation(table.statistics).reshape(-1)
        covariance = np.einsum("m,mi,mj->ij", table.probabilities, centred, centred)
        assert_close(f"{name}: I(θ) = Cov[s(x)]", fisher, covariance, atol=atol)
    return True
