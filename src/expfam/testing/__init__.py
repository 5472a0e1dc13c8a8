r"""A reusable kit of identity checks for exponential-family plugins (docs/testing.md).

Families, mixtures, blocks and models: the identity checks below. Loss terms:
[`check_objective`][expfam.testing.check_objective]. Datasets:
[`check_dataset`][expfam.testing.check_dataset]. Trackers:
[`check_tracker`][expfam.testing.check_tracker].

A plugin author calls these on their own family; each check states an
identity of docs/families.md and docs/mixture.md, computes both sides in float64 and raises
`AssertionError` naming the identity and the tolerance when they
disagree. Checks return `True` when they applied and `False` when the
identity cannot be checked for the family (e.g. enumeration of a continuous
support). The kit needs float64: enable it in your `conftest.py` with
`jax.config.update("jax_enable_x64", True)`; importing the kit changes no
configuration.

Hypothesis strategies live in [`expfam.testing.strategies`][expfam.testing.strategies] (they need the
`hypothesis` package).

Examples:
    >>> import jax
    >>> from expfam.families import Poisson
    >>> from expfam.testing import check_family
    >>> jax.config.update("jax_enable_x64", True)  # the kit compares in float64
    >>> report = check_family(Poisson(2), jax.numpy.array([0.5, -1.0]), key=jax.random.key(0))
    >>> report["mean_map"], report["normalisation"]
    (True, True)
"""

from expfam.testing._assertions import Z_LIMIT, require_x64
from expfam.testing.block_checks import (
    check_block,
    check_block_adjointness,
    check_block_linearity,
    check_cluster_affine_matches_offset,
    check_offset_matches_statistics,
)
from expfam.testing.dataset_checks import check_dataset
from expfam.testing.enumeration import (
    EnumeratedDistribution,
    enumerate_distribution,
    enumerate_support,
    integer_support,
)
from expfam.testing.family_checks import (
    check_entropy,
    check_kl,
    check_mean_map,
    check_normalisation,
)
from expfam.testing.geometry_checks import (
    check_conjugate_duality,
    check_convexity,
    check_fisher_information,
    check_round_trips,
)
from expfam.testing.mixture_checks import (
    check_mixture_conditional,
    check_mixture_kl,
    check_mixture_log_partition,
    check_mixture_means,
    check_mixture_normalisation,
    check_mixture_sampling,
    enumerate_mixture,
)
from expfam.testing.model_checks import (
    ModelTable,
    check_elbo_bound,
    check_joint_identity,
    check_model,
    check_monte_carlo_elbo,
    check_posterior_kl,
    check_posterior_normalised,
    exact_elbo,
    model_table,
)
from expfam.testing.model_inputs import (
    block_mixture,
    enumerate_states,
    latent_statistics,
    random_latent_statistics,
    random_model_params,
    random_observations,
)
from expfam.testing.objective_checks import BUILTIN_TARGETS, ExactTarget, check_objective, exact_elbo_target
from expfam.testing.sampling_checks import check_fit_recovers, check_sampling
from expfam.testing.scipy_reference import (
    SCIPY_REFERENCES,
    ScipyReference,
    check_against_scipy,
)
from expfam.testing.suite import check_family, check_mixture
from expfam.testing.tracker_checks import check_tracker

__all__ = [
    "BUILTIN_TARGETS",
    "SCIPY_REFERENCES",
    "Z_LIMIT",
    "EnumeratedDistribution",
    "ExactTarget",
    "ModelTable",
    "ScipyReference",
    "block_mixture",
    "check_against_scipy",
    "check_block",
    "check_block_adjointness",
    "check_block_linearity",
    "check_cluster_affine_matches_offset",
    "check_conjugate_duality",
    "check_convexity",
    "check_dataset",
    "check_elbo_bound",
    "check_entropy",
    "check_family",
    "check_fisher_information",
    "check_fit_recovers",
    "check_joint_identity",
    "check_kl",
    "check_mean_map",
    "check_mixture",
    "check_mixture_conditional",
    "check_mixture_kl",
    "check_mixture_log_partition",
    "check_mixture_means",
    "check_mixture_normalisation",
    "check_mixture_sampling",
    "check_model",
    "check_monte_carlo_elbo",
    "check_normalisation",
    "check_objective",
    "check_offset_matches_statistics",
    "check_posterior_kl",
    "check_posterior_normalised",
    "check_round_trips",
    "check_sampling",
    "check_tracker",
    "enumerate_distribution",
    "enumerate_mixture",
    "enumerate_states",
    "enumerate_support",
    "exact_elbo",
    "exact_elbo_target",
    "integer_support",
    "latent_statistics",
    "model_table",
    "random_latent_statistics",
    "random_model_params",
    "random_observations",
    "require_x64",
]
