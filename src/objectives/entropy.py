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
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings


def categorical_entropy(probabilities: Array) -> Array:
    r"""`H(p) = −Σ_k p_k log p_k` (0·log 0 = 0)."""
    safe = jnp.where(probabilities > 0, probabilities, 1.0)
    return -jnp.sum(probabilities * jnp.log(safe))


@final
@dataclass(frozen=True)
class PriorEntropy(Objective):
    """Entropy of the prior cluster marginal `p(k)`."""

    name: ClassVar[str] = "prior_entropy"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        entropy = model.mixture.cluster_entropy(params["prior"])
        return -entropy, entropy


@final
@dataclass(frozen=True)
class PosteriorEntropy(Objective):
    """Entropy of the batch-average responsibilities `mean_x q(k | x)`."""

    name: ClassVar[str] = "posterior_entropy"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        average = jnp.mean(model.cluster_responsibilities(params, x), axis=0)
        entropy = categorical_entropy(average)
        return -entropy, entropy
