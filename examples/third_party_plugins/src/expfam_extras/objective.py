r"""The ``l2`` loss term: the squared norm of the interaction blocks' parameters, ``Σ_b ‖W_b‖²``."""

from __future__ import annotations

from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings


@final
class L2Penalty(Objective):
    """``Σ_b ‖W_b‖²`` over the blocks; weight it with ``[train.loss_weights] l2 = ...``."""

    name: ClassVar[str] = "l2"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        value = sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params["likelihood"]["blocks"]))
        return value, value
