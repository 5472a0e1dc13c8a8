r"""The `elbo` term with KL warmup.

$$
\beta = \min(1, \text{step}/\text{kl\_warmup\_steps}),\qquad
L_\beta(x) = \mathrm{ELBO}(x) + (1-\beta)\,\mathrm{KL}(q(z\mid x)\,\|\,p(z)),
$$

contribution `−mean_batch L_β` (through the score-function surrogate);
reported value: the batch-mean Monte-Carlo ELBO (β = 1). Its `r` at the posterior states is
evaluated in the same call as the other terms' ([`expfam.objective.evaluate_terms`][expfam.objective.evaluate_terms]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax.numpy as jnp

from expfam.family import Array
from expfam.objective import Objective, States, StepContext, with_kl_warmup


@final
@dataclass(frozen=True)
class Elbo(Objective):
    """Negative β-weighted ELBO."""

    name: ClassVar[str] = "elbo"
    estimates_elbo: ClassVar[bool] = True

    def states(self, ctx: StepContext, key: Array) -> States:
        """`S = n_mc_samples` stop-gradient states per observation, `z_s ~ q(·|x)`: `(B, S, n)`, `(B, S)`."""
        return ctx.model.posterior_states(key, ctx.posterior, ctx.settings.n_mc_samples)

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(−mean L_β, mean ELBO)` from `r(z_s)` ([`elbo_from_residual`][expfam.model.Harmonium.elbo_from_residual])."""
        assert states is not None and residual is not None  # drawn by states()
        surrogate, elbo = ctx.model.elbo_from_residual(ctx.params, ctx.x, ctx.posterior, *states, residual)
        return -jnp.mean(with_kl_warmup(ctx, surrogate)), jnp.mean(elbo)
