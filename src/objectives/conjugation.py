r"""The `conjugation` term: the residual variance under the prior.

$$
R_p = \mathrm{Var}_{z\sim p(z)}[r(z)],\qquad
\beta_\text{conj} = \min(1, \text{step}/\text{conj\_warmup\_steps}),
$$

contribution `β_conj · R_p` over `M` stop-gradient prior samples; reported value `R_p`.
Its `r` at the prior states is evaluated in the same call as the ELBO's
([`expfam.objective.evaluate_terms`][expfam.objective.evaluate_terms]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.family import Array
from expfam.objective import Objective, States, StepContext, warmup


@final
@dataclass(frozen=True)
class Conjugation(Objective):
    """Penalty on the prior variance of the conjugation residual."""

    name: ClassVar[str] = "conjugation"

    def states(self, ctx: StepContext, key: Array) -> States:
        """`M = n_prior_samples` stop-gradient states `z_m ~ p(z)`."""
        states: States = jax.lax.stop_gradient(ctx.model.sample_prior(key, ctx.params, ctx.settings.n_prior_samples))
        return states

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(β_conj · Var_m r(z_m), Var_m r(z_m))`."""
        assert residual is not None  # at the states of states()
        variance = jnp.var(residual)
        return warmup(ctx.step, ctx.settings.conj_warmup_steps) * variance, variance
