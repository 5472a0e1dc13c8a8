"""`expfam.testing.check_objective` over every built-in loss term, and what it catches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import pytest

from expfam.family import Array
from expfam.objective import Objective, ObjectiveSettings, States, StepContext
from expfam.testing import BUILTIN_TARGETS, check_objective, random_model_params, random_observations
from expfam.testing.objective_checks import exact_prior_entropy_target
from objectives import plugin as builtin_objectives
from tiny_shapes import enumerated_model

# The README's test line leaves the plugin authors' objective kit to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

MODEL = enumerated_model("full")
PARAMS = random_model_params(MODEL, jax.random.key(0), scale=0.5)
X = random_observations(MODEL.observable, 0, 3)
BUILTIN = [term.name for term in builtin_objectives.expfam_objectives()]


def test_every_built_in_term_has_an_exact_target() -> None:
    assert sorted(BUILTIN) == sorted(BUILTIN_TARGETS)


@pytest.mark.slow
@pytest.mark.parametrize("term", builtin_objectives.expfam_objectives(), ids=lambda term: term.name)
def test_every_built_in_term_passes_the_objective_kit(term: Objective) -> None:
    report = check_objective(term, MODEL, PARAMS, X, key=jax.random.key(1), exact=BUILTIN_TARGETS[term.name])
    assert report == {"finite": True, "jit": True, "vmap": True, "unbiased": True}


def test_the_elbo_in_its_kl_warmup_passes_against_the_warmup_target() -> None:
    term = next(t for t in builtin_objectives.expfam_objectives() if t.name == "elbo")
    settings = ObjectiveSettings(kl_warmup_steps=10, conj_warmup_steps=0, n_mc_samples=4, n_prior_samples=16)
    report = check_objective(
        term, MODEL, PARAMS, X, key=jax.random.key(2), step=3, settings=settings, exact=BUILTIN_TARGETS["elbo"]
    )
    assert report["unbiased"]


@dataclass(frozen=True)
class NoisyPriorEntropy(Objective):
    """`H(p(k)) + bias + noise·N(0, 1)`: unbiased for `H` only when `bias = 0`."""

    name: ClassVar[str] = "noisy_prior_entropy"
    bias: float = 0.0
    noise: float = 0.1

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        entropy = ctx.model.mixture.cluster_entropy(ctx.params["prior"])
        value = entropy + self.bias + self.noise * jax.random.normal(key)
        return -value, value


def test_an_unbiased_noisy_term_passes_and_the_same_term_with_a_bias_of_a_twentieth_fails() -> None:
    exact = exact_prior_entropy_target
    assert check_objective(NoisyPriorEntropy(), MODEL, PARAMS, X, key=jax.random.key(3), exact=exact)["unbiased"]
    with pytest.raises(AssertionError, match=r"noisy_prior_entropy.*exact target.*entry \(0,\)"):
        check_objective(NoisyPriorEntropy(bias=0.05), MODEL, PARAMS, X, key=jax.random.key(3), exact=exact)


@dataclass(frozen=True)
class BranchingTerm(Objective):
    name: ClassVar[str] = "branching"

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        value = jnp.sum(ctx.params["rho_y"] ** 2)
        if value > 0:  # a Python branch on a traced value
            return value, value
        return -value, value


def test_a_term_that_does_not_trace_under_jit_is_named() -> None:
    with pytest.raises(AssertionError, match=r"'branching'.*does not trace under jax.jit"):
        check_objective(BranchingTerm(), MODEL, PARAMS, X, key=jax.random.key(4))


@dataclass(frozen=True)
class SqrtAtZero(Objective):
    name: ClassVar[str] = "sqrt_at_zero"

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        value = jnp.sqrt(jnp.sum(ctx.params["rho_y"] ** 2) * 0.0)  # finite value, gradient 0·∞ = NaN
        return value, value


def test_a_term_with_a_non_finite_gradient_is_named_with_the_parameter() -> None:
    with pytest.raises(AssertionError, match=r"'sqrt_at_zero'.*gradient.*not finite at params\['rho_y'\]"):
        check_objective(SqrtAtZero(), MODEL, PARAMS, X, key=jax.random.key(5))


def test_the_loss_term_page_lists_every_model_member_the_built_in_terms_call() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [*sorted((root / "src" / "objectives").glob("*.py")), root / "src" / "expfam" / "objective.py"]
    used = {m for path in sources for m in re.findall(r"\bmodel\.((?:mixture\.)?[a-z_]+)", path.read_text())}
    page = (root / "docs" / "loss-term-api.md").read_text()
    assert used, "no model members found in the built-in terms"
    assert not {member for member in used if f"model.{member}" not in page}, sorted(used)
