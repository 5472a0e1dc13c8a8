r"""The ``conjugation`` term: the residual variance under the prior.

.. math::

    R_p = \mathrm{Var}_{z\sim p(z)}[r(z)],\qquad
    \beta_\text{conj} = \min(1, \text{step}/\text{conj\_warmup\_steps}),

contribution ``β_conj · R_p`` over ``M`` stop-gradient prior samples; reported value ``R_p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

from expfam.family import Array
from expfam.model import Harmonium, Params
from expfam.objective import Objective, ObjectiveSettings, warmup


@final
@dataclass(frozen=True)
class Conjugation(Objective):
    """Penalty on the prior variance of the conjugation residual."""

    name: ClassVar[str] = "conjugation"

    def __call__(
        self, model: Harmonium, params: Params, x: Array, key: Array, step: Array, settings: ObjectiveSettings
    ) -> tuple[Array, Array]:
        variance = model.prior_residual_variance(key, params, settings.n_prior_samples)
        return warmup(step, settings.conj_warmup_steps) * variance, variance
