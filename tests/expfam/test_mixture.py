"""The latent mixture p(y, k) of MODEL.md §2, over every registered latent family.

ψ_Z, its gradient, the joint density and the conditionals are compared with a
brute-force table over every (y, k) (the latent's support enumerated); KL and
sampling are checked for every latent, the table-based checks only where the
latent's support can be enumerated.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logsumexp, softplus

from expfam.errors import ConfigurationError
from expfam.families import Bernoulli
from expfam.family import ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.plugins import get_registry
from expfam.testing import (
    check_mixture,
    check_mixture_conditional,
    check_mixture_kl,
    check_mixture_log_partition,
    check_mixture_means,
    check_mixture_normalisation,
    check_mixture_sampling,
    integer_support,
)
from expfam.testing.strategies import mixture_params, sized_family, smallest_size

REGISTRY = get_registry()
FAMILY_NAMES = REGISTRY.names("families")
KEY = jax.random.key(7)
SCALE = 1.5


def fixed_mixture(name: str) -> LatentMixture:
    """A mixture of three clusters over the registered family ``name`` at a small size."""
    cls = REGISTRY.family(name)
    return LatentMixture(cls(max(2, smallest_size(cls)), **cls.example_options), 3)


def is_enumerable(latent: ExponentialFamily) -> bool:
    return integer_support(latent) is not None


def mixture_with_params(name: str) -> st.SearchStrategy[tuple[LatentMixture, dict]]:
    return st.just(fixed_mixture(name)).flatmap(
        lambda mixture: st.tuples(st.just(mixture), mixture_params(mixture, scale=SCALE))
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_log_partition_matches_brute_force_over_shapes(name: str) -> None:
    """ψ_Z against logsumexp over every (y, k), for latent sizes n ≤ 3 and K ≤ 4 clusters."""
    shapes = st.tuples(sized_family(REGISTRY.family(name), max_size=3), st.integers(2, 4))
    mixtures = shapes.map(lambda pair: LatentMixture(*pair))

    @settings(max_examples=4)
    @given(case=mixtures.flatmap(lambda m: st.tuples(st.just(m), mixture_params(m, scale=SCALE))))
    def run(case: tuple) -> None:
        mixture, params = case
        assert check_mixture_log_partition(mixture, params) is is_enumerable(mixture.latent)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_mean_statistics_match_enumeration(name: str) -> None:
    @given(case=mixture_with_params(name))
    def run(case: tuple) -> None:
        mixture, params = case
        assert check_mixture_means(mixture, params) is is_enumerable(mixture.latent)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_log_density_normalises(name: str) -> None:
    @given(case=mixture_with_params(name))
    def run(case: tuple) -> None:
        mixture, params = case
        assert check_mixture_normalisation(mixture, params) is is_enumerable(mixture.latent)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_conditional_is_the_latent_family(name: str) -> None:
    @given(case=mixture_with_params(name))
    def run(case: tuple) -> None:
        mixture, params = case
        assert check_mixture_conditional(mixture, params) is is_enumerable(mixture.latent)

    run()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_kl_divergence(name: str) -> None:
    mixture = fixed_mixture(name)

    @given(params=mixture_params(mixture, scale=SCALE), other=mixture_params(mixture, scale=SCALE))
    def run(params: dict, other: dict) -> None:
        assert check_mixture_kl(mixture, params, other)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_sampling(name: str) -> None:
    mixture = fixed_mixture(name)

    @settings(max_examples=4)
    @given(params=mixture_params(mixture, scale=SCALE))
    def run(params: dict) -> None:
        assert check_mixture_sampling(mixture, params, key=KEY)

    run()


def test_cluster_marginal_follows_section_2_formula() -> None:
    """For a Bernoulli latent, p(k) ∝ exp(b_k·e_k + Σ softplus(b_y + W_yk e_k)), written out with NumPy."""
    mixture = LatentMixture(Bernoulli(3), 4)
    generator = np.random.default_rng(0)
    params = {name: generator.normal(size=shape) for name, shape in mixture.param_shapes().items()}
    thetas = params["b_y"][None] + np.concatenate([np.zeros((1, 3)), params["W_yk"].T])
    logits = np.concatenate([[0.0], params["b_k"]]) + softplus(thetas).sum(axis=1)
    probabilities, log_partition, conditional = jax.jit(
        lambda p: (
            mixture.cluster_probabilities(p),
            mixture.log_partition(p),
            jax.vmap(lambda k: Bernoulli(3).means(mixture.conditional_params(p, k)))(np.arange(4)),
        )
    )(params)
    np.testing.assert_allclose(probabilities, np.exp(logits - logsumexp(logits)), rtol=1e-12)
    np.testing.assert_allclose(log_partition, logsumexp(logits), rtol=1e-12)
    np.testing.assert_allclose(conditional, expit(thetas), rtol=1e-12)


def test_section_2_mixture_passes_every_check() -> None:
    """The spec's own prior, a Bernoulli latent, through the kit's whole mixture suite."""
    mixture = fixed_mixture("bernoulli")
    generator = np.random.default_rng(1)
    params, other = (
        {name: generator.normal(size=shape) for name, shape in mixture.param_shapes().items()} for _ in range(2)
    )
    assert all(check_mixture(mixture, params, key=KEY, other=other).values())


@pytest.mark.parametrize("n_clusters", [1, 0, 2.5])
def test_too_few_clusters_is_a_configuration_error(n_clusters: object) -> None:
    with pytest.raises(ConfigurationError, match=r"n_clusters must be an integer ≥ 2, got"):
        LatentMixture(Bernoulli(2), n_clusters)  # type: ignore[arg-type]
