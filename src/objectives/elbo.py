r"""The `elbo` term with KL warmup.

$$
\beta = \min(1, \text{step}/\text{kl\_warmup\_steps}),\qquad
L_\beta(x) = \mathrm{ELBO}(x) + (1-\beta)\,\mathrm{KL}(q(z\mid x)\,\|\,p(z)),
$$

contribution `−mean_batch L_β` (through the score-function surrogate);
reported value: the batch-mean Monte-Carlo ELBO (β = 1). A
[`ResidualObjective`][expfam.objective.ResidualObjective]: inside a combined loss its `r` is evaluated
in the same call as the other residual terms'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax.numpy as jnp

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import ObjectiveSettings, ResidualObjective, with_kl_warmup


@final
@dataclass(frozen=True)
class Elbo(ResidualObjective):
    """Negative β-weighted ELBO."""

    name: ClassVar[str] = "elbo"
    estimates_elbo: ClassVar[bool] = True

    def states(
        self, model: Harmonium, params: Params, x: Array, key: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        """`S = n_mc_samples` stop-gradient states per observation, `z_s ~ q(·|x)`: `(B, S, n)`, `(B, S)`."""
        return model.posterior_states(key, model.posterior_params(params, x), settings.n_mc_samples)

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
        """`(−mean L_β, mean ELBO)` from `r(z_s)` ([`elbo_from_residual`][expfam.model.Harmonium.elbo_from_residual])."""
        posterior = model.posterior_params(params, x)
        surrogate, elbo = model.elbo_from_residual(params, x, posterior, *states, residual)
        surrogate = with_kl_warmup(model, params, x, posterior, surrogate, step, settings.kl_warmup_steps)
        return -jnp.mean(surrogate), jnp.mean(elbo)
