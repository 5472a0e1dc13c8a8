r"""Cluster-usage and parameter-size diagnostics of a model on data (docs/collapse.md).

Functions of `(model, params, x)` only, so that a single run's progress callback and
a stack of trials can call them alike. With `q(k | x)` the responsibilities and
`\bar q_k = \tfrac1n \sum_x q(k\mid x)` their mean over the rows of `x`:

$$
\text{active} = |\{k : \exists x,\ \arg\max_j q(j\mid x) = k\}|,\qquad
H_\text{usage} = -\sum_k \bar q_k \log \bar q_k,\qquad
\text{usage\_max} = \max_k \bar q_k,\qquad
\text{prior\_max} = \max_k p(k),
$$

and the Euclidean norms of each interaction block's parameters (`‖W‖` of `xy`,
`‖V‖` of `xyk`, `‖U‖` of `xk`, ...) and of the two parts of the conjugation
correction, `‖ρ_k‖` (the computed cluster part) and `‖ρ_y‖` (the learned part).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from expfam.experiment.evaluation import responsibilities
from expfam.model import Harmonium, Params

#: The history columns of [`usage_metrics`][expfam.experiment.usage.usage_metrics] that do not depend on the block set.
USAGE_COLUMNS: tuple[str, ...] = ("active", "usage_entropy", "usage_max", "prior_max", "rho_k_norm", "rho_y_norm")


def block_norm_column(name: str) -> str:
    """The history column of block `name`'s parameter norm, `norm_<name>`."""
    return f"norm_{name}"


def parameter_norms(model: Harmonium, params: Params) -> dict[str, float]:
    """`{"norm_<block>": ‖block params‖, "rho_k_norm": ‖ρ_k‖, "rho_y_norm": ‖ρ_y‖}`."""
    blocks = params["likelihood"]["blocks"]
    norms = {block_norm_column(name): float(jnp.linalg.norm(jnp.ravel(blocks[name]))) for name in model.block_names}
    norms["rho_k_norm"] = float(jnp.linalg.norm(model.cluster_correction(params)))
    norms["rho_y_norm"] = float(jnp.linalg.norm(params["rho_y"]))
    return norms


def usage_metrics(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
    """Active clusters, the entropy and largest entry of the mean responsibilities, the largest
    prior `p(k)`, and [`parameter_norms`][expfam.experiment.usage.parameter_norms] (see the module docstring for the formulas)."""
    q = responsibilities(model, params, x, batch_size)
    mean_q = q.mean(axis=0)
    positive = mean_q[mean_q > 0]
    prior = np.asarray(model.mixture.cluster_probabilities(params["prior"]))
    return {
        "active": float(np.unique(q.argmax(axis=1)).size),
        "usage_entropy": float(-np.sum(positive * np.log(positive))),
        "usage_max": float(mean_q.max()),
        "prior_max": float(prior.max()),
        **parameter_norms(model, params),
    }


__all__ = ["USAGE_COLUMNS", "block_norm_column", "parameter_norms", "usage_metrics"]
