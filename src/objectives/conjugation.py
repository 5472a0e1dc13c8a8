r"""The `conjugation` term: the residual variance under the prior.

$$
R_p = \mathrm{Var}_{z\sim p(z)}[r(z)],\qquad
\beta_\text{conj} = \min(1, \text{step}/\text{conj\_warmup\_steps}),
$$

contribution `β_conj · R_p` over `M` stop-gradient prior samples; reported value `R_p`.
A [`ResidualObjective`][expfam.objective.ResidualObjective]: inside a combined loss its `r` is evaluated
in the same call as the ELBO's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, ResidualObjective, warmup


@final
@dataclass(frozen=True)
class Conjugation(ResidualObjective):
    """Penalty on the prior variance of the conjugation residual."""

    name: ClassVar[str] = "conjugation"

    def states(
        self, model: Harmonium, params: Params, x: Array, key: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        """`M = n_prior_samples` stop-gradient states `z_m ~ p(z)`."""
        states: tuple[Array, Array] = jax.lax.stop_gradient(model.sample_prior(key, params, settings.n_prior_samples))
        return states

    def finish(
        self,
        model: Harmonium,
        params: Params,
        x: Array,
        step: Array,
        settings: ObjectiveSettings,
        states: tuple[Array, Array],
        residual: Array,
    ) -> tuple[Array, Array]:
        """`(β_conj · Var_m r(z_m), Var_m r(z_m))`."""
        variance = jnp.var(residual)
        return warmup(step, settings.conj_warmup_steps) * variance, variance
