"""The test kit itself: it passes correct families (see test_family_identities) and catches broken ones.

``Faulty`` wraps a correct family and plants one bug; every check must then
raise an ``AssertionError`` naming the identity that broke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, final

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expfam.families import Bernoulli, Binomial, Categorical, DiagonalNormal, Poisson
from expfam.family import Array, ExponentialFamily, register_family
from expfam.mixture import LatentMixture
from expfam.plugins import get_registry
from expfam.testing import (
    SCIPY_REFERENCES,
    check_against_scipy,
    check_conjugate_duality,
    check_convexity,
    check_entropy,
    check_fisher_information,
    check_fit_recovers,
    check_kl,
    check_mean_map,
    check_mixture_conditional,
    check_mixture_log_partition,
    check_mixture_means,
    check_mixture_sampling,
    check_normalisation,
    check_round_trips,
    check_sampling,
    enumerate_support,
    require_x64,
)
from expfam.testing.strategies import (
    families,
    mixture_params,
    mixtures,
    natural_params,
    observations,
    sized_family,
)

# The README's test line leaves the plugin authors' test kit to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

KEY = jax.random.key(3)


@final
@register_family
@dataclass(frozen=True)
class Faulty(ExponentialFamily):
    """``inner`` with one planted bug (``bug`` names it); everything else delegates."""

    name: ClassVar[str] = "faulty"

    inner: ExponentialFamily
    bug: str

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.inner.size

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.inner.param_shape

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.inner.data_shape

    def sufficient_statistic(self, x: Array) -> Array:
        statistic = self.inner.sufficient_statistic(x)
        return 1.5 * statistic if self.bug == "statistic" else statistic

    def log_base_measure(self, x: Array) -> Array:
        return self.inner.log_base_measure(x)

    def log_partition(self, params: Array) -> Array:
        value = self.inner.log_partition(params)
        return {"psi_shift": value + 0.3, "psi_scale": 1.2 * value, "concave": -value}.get(self.bug, value)

    def natural_from_means(self, means: Array) -> Array:
        params = self.inner.natural_from_means(means)
        return 1.05 * params if self.bug == "inverse" else params

    def expected_log_base_measure(self, params: Array) -> Array:
        value = self.inner.expected_log_base_measure(params)
        return value + 0.1 if self.bug == "entropy" else value

    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        if self.bug == "sampler":
            first = (Ellipsis,) + (0,) * len(self.param_shape)
            params = jnp.asarray(params).at[first].add(0.4)
        draws = self.inner.sample(key, params, shape)
        return draws + 2 if self.bug == "support" else draws

    def in_support(self, x: np.ndarray) -> np.ndarray:
        return self.inner.in_support(x)

    def natural_from_unconstrained(self, u: Array) -> Array:
        return self.inner.natural_from_unconstrained(u)

    def reference_params(self) -> Array:
        return self.inner.reference_params()


PARAMS = {
    "bernoulli": jnp.array([0.4, -1.1]),
    "normal": jnp.array([[0.5, -0.7], [-1.0, -2.0]]),
}
OTHER = {
    "bernoulli": jnp.array([-0.3, 0.8]),
    "normal": jnp.array([[0.1, -1.5], [0.4, -0.3]]),
}
INNER = {"bernoulli": Bernoulli(2), "normal": DiagonalNormal(2)}

CHECKS: dict[str, Any] = {
    "mean_map": lambda family, params, other: check_mean_map(family, params, key=KEY),
    "normalisation": lambda family, params, other: check_normalisation(family, params),
    "entropy": lambda family, params, other: check_entropy(family, params, key=KEY),
    "convexity": lambda family, params, other: check_convexity(family, params, other),
    "duality": lambda family, params, other: check_conjugate_duality(family, params, other),
    "round_trips": lambda family, params, other: check_round_trips(family, params, other),
    "fisher": lambda family, params, other: check_fisher_information(family, params),
    "kl": lambda family, params, other: check_kl(family, params, other, key=KEY),
    "sampling": lambda family, params, other: check_sampling(family, params, key=KEY),
    "fit": lambda family, params, other: check_fit_recovers(family, params, key=KEY),
}


@pytest.mark.parametrize(
    ("inner", "bug", "check", "match"),
    [
        ("bernoulli", "psi_shift", "normalisation", r"ψ\(θ\) = log Σ_x h\(x\) exp\(θ·s\(x\)\).*atol="),
        ("bernoulli", "psi_scale", "mean_map", r"∇ψ\(θ\) = Σ_x p\(x\) s\(x\)"),
        ("bernoulli", "psi_scale", "fisher", r"I\(θ\) = Cov\[s\(x\)\]"),
        ("bernoulli", "psi_scale", "kl", r"KL = ψ\(θ′\) \+ φ\(η\) − θ′·η"),
        ("bernoulli", "statistic", "kl", r"KL = Σ_x p log\(p/q\)"),
        ("bernoulli", "concave", "convexity", r"second derivative of ψ.*expected ≥ 0"),
        ("bernoulli", "inverse", "round_trips", r"θ → η → θ"),
        ("bernoulli", "inverse", "duality", r"ψ\(θ\) \+ φ\(∇ψ\(θ\)\) = θ·∇ψ\(θ\)"),
        ("bernoulli", "entropy", "entropy", r"H = −Σ_x p log p"),
        ("bernoulli", "sampler", "sampling", r"sample mean of s\(x\) vs ∇ψ\(θ\).*accepted \|z\| < 5"),
        ("bernoulli", "sampler", "fit", r"fitted θ̂ vs θ"),
        ("bernoulli", "support", "sampling", r"sampled value .* outside the family's own support"),
        ("normal", "sampler", "mean_map", r"sample mean of s\(x\) vs ∇ψ\(θ\)"),
        ("normal", "entropy", "entropy", r"−mean log p\(x\) vs H"),
        ("normal", "statistic", "kl", r"mean log\(p/q\) over samples of p vs KL"),
    ],
)
def test_kit_catches_a_planted_bug(inner: str, bug: str, check: str, match: str) -> None:
    family = Faulty(INNER[inner], bug)
    with pytest.raises(AssertionError, match=match):
        CHECKS[check](family, PARAMS[inner], OTHER[inner])


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_kit_passes_the_unbroken_wrapper(check: str) -> None:
    """The wrapper without a bug passes, so the failures above come from the bugs."""
    assert CHECKS[check](Faulty(Bernoulli(2), "none"), PARAMS["bernoulli"], OTHER["bernoulli"]) in (True, False)


def test_scipy_reference_catches_a_wrong_log_density(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SCIPY_REFERENCES, "faulty", SCIPY_REFERENCES["bernoulli"])
    x = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert check_against_scipy(Faulty(Bernoulli(2), "none"), PARAMS["bernoulli"], x)
    with pytest.raises(AssertionError, match=r"log p\(x\) vs scipy\.stats"):
        check_against_scipy(Faulty(Bernoulli(2), "psi_shift"), PARAMS["bernoulli"], x)


def test_scipy_reference_is_optional() -> None:
    assert check_against_scipy(Faulty(Bernoulli(2), "none"), PARAMS["bernoulli"], np.zeros(2)) is False


@pytest.mark.parametrize(
    ("bug", "check", "match"),
    [
        ("psi_shift", check_mixture_log_partition, r"ψ_Z vs brute-force logsumexp over \(y, k\)"),
        ("psi_scale", check_mixture_means, r"∇ψ_Z\[b_y\] = E\[s_Z\]\[b_y\]"),
        ("psi_scale", check_mixture_conditional, r"p\(k\) vs enumeration"),
    ],
)
def test_mixture_checks_catch_a_faulty_latent(bug: str, check: Any, match: str) -> None:
    mixture = LatentMixture(Faulty(Bernoulli(2), bug), 3)
    params = {name: np.full(shape, 0.3) for name, shape in mixture.param_shapes().items()}
    with pytest.raises(AssertionError, match=match):
        check(mixture, params)


def test_mixture_sampling_catches_a_faulty_sampler() -> None:
    mixture = LatentMixture(Faulty(Bernoulli(2), "sampler"), 2)
    params = {name: np.full(shape, 0.3) for name, shape in mixture.param_shapes().items()}
    with pytest.raises(AssertionError, match=r"mean s_Y\(y\) given k=\d"):
        check_mixture_sampling(mixture, params, key=KEY)


def test_checks_refuse_float32() -> None:
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match=r"needs float64.*jax_enable_x64"):
            require_x64()
    finally:
        jax.config.update("jax_enable_x64", True)


# ----------------------------------------------------------------- enumeration
def test_enumeration_of_bounded_supports() -> None:
    assert enumerate_support(Bernoulli(3)).shape == (8, 3)
    points = enumerate_support(Binomial(2, n_trials=3))
    assert points.shape == (16, 2) and set(np.unique(points)) == {0.0, 1.0, 2.0, 3.0}
    np.testing.assert_array_equal(enumerate_support(Categorical(4)), np.arange(4))
    assert enumerate_support(Bernoulli(3), max_points=7) is None


def test_continuous_support_is_not_enumerable() -> None:
    assert enumerate_support(DiagonalNormal(2), params=PARAMS["normal"]) is None


def test_unbounded_support_is_truncated_by_the_parameters() -> None:
    assert enumerate_support(Poisson(1)) is None
    small = enumerate_support(Poisson(1), params=jnp.array([-1.0]))
    large = enumerate_support(Poisson(1), params=jnp.array([2.5]))
    assert small is not None and large is not None
    assert small.max() < large.max()
    assert large.max() > np.exp(2.5) + 10 * np.exp(1.25)
    assert enumerate_support(Poisson(1), params=jnp.array([8.0])) is None  # rate 2981: beyond the probed range


# ------------------------------------------------------------------ strategies
@settings(max_examples=25)
@given(family=families(max_size=3))
def test_families_strategy_draws_registered_families(family: ExponentialFamily) -> None:
    assert type(family) is get_registry().family(family.name)
    assert 1 <= family.size <= 3


@pytest.mark.parametrize("name", get_registry().names("families"))
def test_natural_params_are_interior(name: str) -> None:
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        family = data.draw(sized_family(get_registry().family(name), max_size=2))
        params = data.draw(natural_params(family))
        observation = data.draw(observations(family))
        assert params.shape == family.param_shape
        assert np.isfinite(family.log_partition(params))
        assert np.asarray(family.in_support(observation)).all()

    run()


@settings(max_examples=10)
@given(data=st.data())
def test_mixture_params_keep_every_cluster_interior(data: st.DataObject) -> None:
    mixture = data.draw(mixtures(sized_family(DiagonalNormal, max_size=2), max_clusters=4))
    params = data.draw(mixture_params(mixture))
    assert {name: np.shape(value) for name, value in params.items()} == mixture.param_shapes()
    thetas = np.asarray(mixture.cluster_params(params))
    assert (thetas[..., 1] < 0).all()
