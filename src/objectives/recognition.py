r"""The `recognition_conjugation` term: the residual variance under the posterior.

$$
R_q = \operatorname{mean}_{x}\ \mathrm{Var}_{z\sim q(z\mid x)}[r(z)]
$$

over `S` stop-gradient posterior samples per observation; contribution and value `R_q`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax
import jax.numpy as jnp

from expfam.family import Array
from expfam.objective import Objective, States, StepContext


@final
@dataclass(frozen=True)
class RecognitionConjugation(Objective):
    """Penalty on the posterior variance of the conjugation residual."""

    name: ClassVar[str] = "recognition_conjugation"

    def finish(
        self, ctx: StepContext, key: Array, states: States | None, residual: Array | None
    ) -> tuple[Array, Array]:
        """`(R_q, R_q)` over `S = n_mc_samples` stop-gradient states per observation."""
        posterior = jax.lax.stop_gradient(ctx.posterior)
        y, k = jax.lax.stop_gradient(ctx.model.sample_posterior(key, posterior, ctx.settings.n_mc_samples))
        variance = jnp.mean(jnp.var(ctx.model.batch_residual(ctx.params, y, k), axis=1))
        return variance, variance
