r"""The ``elbo`` term with KL warmup.

.. math::

    \beta = \min(1, \text{step}/\text{kl\_warmup\_steps}),\qquad
    L_\beta(x) = \mathrm{ELBO}(x) + (1-\beta)\,\mathrm{KL}(q(z\mid x)\,\|\,p(z)),

contribution ``−mean_batch L_β`` (through the score-function surrogate);
reported value: the batch-mean Monte-Carlo ELBO (β = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

import jax.numpy as jnp

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings, with_kl_warmup


@final
@dataclass(frozen=True)
class Elbo(Objective):
    """Negative β-weighted ELBO."""

    name: ClassVar[str] = "elbo"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        posterior = model.posterior_params(params, x)
        surrogate, elbo = model.elbo_terms(key, params, x, settings.n_mc_samples, posterior)
        surrogate = with_kl_warmup(model, params, x, posterior, surrogate, step, settings.kl_warmup_steps)
        return -jnp.mean(surrogate), jnp.mean(elbo)
