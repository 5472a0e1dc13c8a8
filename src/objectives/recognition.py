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
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings


@final
@dataclass(frozen=True)
class RecognitionConjugation(Objective):
    """Penalty on the posterior variance of the conjugation residual."""

    name: ClassVar[str] = "recognition_conjugation"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        posterior = jax.lax.stop_gradient(model.posterior_params(params, x))
        y, k = jax.lax.stop_gradient(model.sample_posterior(key, posterior, settings.n_mc_samples))
        variance = jnp.mean(jnp.var(model.batch_residual(params, y, k), axis=1))
        return variance, variance
