r"""The entropy terms `prior_entropy` and `posterior_entropy`.

$$
H_\text{prior} = H(p(k)),\qquad
H_\text{post} = H\Big(\tfrac1B\sum_{x\in\text{batch}} q(k\mid x)\Big),
$$

each contributing `−H` (so a positive weight rewards spreading mass over clusters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax.numpy as jnp

from expfam.family import Array
from expfam.objective import Objective, States, StepContext


def categorical_entropy(probabilities: Array) -> Array:
    r"""`H(p) = −Σ_k p_k log p_k` (0·log 0 = 0)."""
    safe = jnp.where(probabilities > 0, probabilities, 1.0)
    return -jnp.sum(probabilities * jnp.log(safe))


@final
@dataclass(frozen=True)
class PriorEntropy(Objective):
    """Entropy of the prior cluster marginal `p(k)`."""

    name: ClassVar[str] = "prior_entropy"

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(−H(p(k)), H(p(k)))`."""
        entropy = ctx.model.mixture.cluster_entropy(ctx.params["prior"])
        return -entropy, entropy


@final
@dataclass(frozen=True)
class PosteriorEntropy(Objective):
    """Entropy of the batch-average responsibilities `mean_x q(k | x)`."""

    name: ClassVar[str] = "posterior_entropy"

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(−H(mean_x q(k | x)), H(mean_x q(k | x)))`, from the step's posterior."""
        average = jnp.mean(ctx.posterior.responsibilities, axis=0)
        entropy = categorical_entropy(average)
        return -entropy, entropy
