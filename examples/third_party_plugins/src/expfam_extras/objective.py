r"""The `l2` loss term: the squared norm of the interaction blocks' parameters, `Σ_b ‖W_b‖²`.

Option `average` (`[train.loss_options.l2]` or `--loss-option l2.average=true`): the mean
of the squared entries instead of their sum, `Σ_b ‖W_b‖² / Σ_b |W_b|`, a penalty whose size
does not grow with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.errors import ConfigurationError
from expfam.family import Array
from expfam.objective import Objective, States, StepContext


@final
@dataclass(frozen=True)
class L2Penalty(Objective):
    r"""`Σ_b ‖W_b‖²` over the blocks (its mean with `average`); weight it with `[train.loss_weights] l2 = ...`."""

    name: ClassVar[str] = "l2"

    average: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.average, bool):
            raise ConfigurationError(
                f"loss term 'l2': average must be true or false, got {self.average!r}", offending=self.average
            )

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(penalty, penalty)`: it reads only `ctx.params` (no states, so `states` and `residual` are `None`)."""
        leaves = jax.tree.leaves(ctx.params["likelihood"]["blocks"])
        value = sum(jnp.sum(leaf**2) for leaf in leaves)
        if self.average:
            value = value / sum(leaf.size for leaf in leaves)
        return value, value
