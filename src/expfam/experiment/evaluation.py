r"""Evaluation of a trained model: the reference table's columns and more (docs/metrics.md).

On the test split, with assignments `argmax_k q(k | x)`: NMI, purity,
Hungarian accuracy, ARI, active clusters; reconstruction error
`mean (x − x̂)²` with `x̂ = ∇ψ_X(θ_X(E_q[s_Z]))` in count units; the
conjugation R² over prior samples; `‖ρ̃‖`; the β = 1 Monte-Carlo ELBO and
the IWAE bound, each averaged over test points.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam import interrupts
from expfam.experiment.config import EvaluateConfig
from expfam.family import Array
from expfam.metrics import active_clusters, clustering_metrics
from expfam.model import Harmonium, Params


@functools.lru_cache(maxsize=64)
def compiled_method(model: Harmonium, method: str, *static: int) -> Any:
    """`jit(model.method)`, made once per model, method and static sample count.

    `assign`, `reconstruct` and `cluster_responsibilities` take `(params, x)`;
    `r_squared` takes `(key, params)`; any other method `(key, params, x)`. The
    static sample counts follow those arguments.
    """
    function = getattr(model, method)
    if method in ("assign", "reconstruct", "cluster_responsibilities"):
        return jax.jit(function)
    if method == "r_squared":
        return jax.jit(lambda key, params: function(key, params, *static))
    return jax.jit(lambda key, params, x: function(key, params, x, *static))


def in_batches(function: Any, x: np.ndarray | Array, batch_size: int = 1000) -> np.ndarray:
    """`function` applied to `batch_size` rows of `x` at a time, results concatenated on axis 0."""
    pieces = [np.asarray(function(jnp.asarray(x[i : i + batch_size]))) for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(pieces, axis=0)


def responsibilities(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The responsibilities `q(k | x)` for every row of `x`, shape `(n, K)`."""
    responsibility = compiled_method(model, "cluster_responsibilities")
    return in_batches(lambda batch: responsibility(params, batch), x, batch_size)


def assignments(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Cluster assignments `argmax_k q(k | x)` for every row of `x`."""
    assign = compiled_method(model, "assign")
    return in_batches(lambda batch: assign(params, batch), x, batch_size)


def reconstruction_error(model: Harmonium, params: Params, x: np.ndarray, batch_size: int = 1000) -> float:
    """`mean over points and coordinates of (x − x̂)²`, `x̂ = ∇ψ_X(θ_X(E_q[s_Z]))`."""
    reconstruct = compiled_method(model, "reconstruct")
    x_hat = in_batches(lambda batch: reconstruct(params, batch), x, batch_size)
    return float(np.mean((np.asarray(x, dtype=float) - x_hat) ** 2))


#: The metrics that compare clusters with class labels; unlabelled data has none of them.
LABEL_METRICS: tuple[str, ...] = ("nmi", "purity", "accuracy", "ari")


def quick_metrics(
    model: Harmonium, params: Params, x: np.ndarray, labels: np.ndarray | None, key: Array, n_r2_samples: int = 2000
) -> dict[str, float]:
    """The cheap progress metrics: NMI (with labels) and R² (fewer prior samples than the final evaluation)."""
    r2 = float(compiled_method(model, "r_squared", n_r2_samples)(key, params))
    if labels is None:
        return {"r2": r2}
    assigned = assignments(model, params, x)
    scores = clustering_metrics(labels, assigned, model.n_clusters)
    return {"nmi": scores["nmi"], "r2": r2}


def evaluate(
    model: Harmonium,
    params: Params,
    x: np.ndarray,
    labels: np.ndarray | None,
    *,
    key: Array,
    config: EvaluateConfig | None = None,
) -> dict[str, float]:
    """All metrics of docs/metrics.md on `(x, labels)`.

    Returns:
        `{"nmi", "purity", "accuracy", "ari", "active_clusters", "recon", "r2",
        "rho_norm", "elbo", "iwae"}` as floats; without labels (`labels=None`) the
        label metrics of `LABEL_METRICS` are left out.
    """
    config = config or EvaluateConfig()
    key_r2, key_elbo, key_iwae = jax.random.split(key, 3)
    assigned = assignments(model, params, x, config.batch_size)
    if labels is None:
        results: dict[str, float] = {"active_clusters": active_clusters(assigned, model.n_clusters)}
    else:
        results = dict(clustering_metrics(labels, assigned, model.n_clusters))
    interrupts.check()  # safe points between the stages (the command line's signals, expfam.interrupts)
    results["recon"] = reconstruction_error(model, params, x, config.batch_size)
    interrupts.check()
    results["r2"] = float(compiled_method(model, "r_squared", config.n_r2_samples)(key_r2, params))
    results["rho_norm"] = float(model.correction_norm(params))
    elbo = compiled_method(model, "elbo_terms", config.n_elbo_samples)
    iwae = compiled_method(model, "iwae_bound", config.n_iwae_samples)
    results["elbo"] = float(np.mean(in_batches(lambda batch: elbo(key_elbo, params, batch)[1], x, config.batch_size)))
    interrupts.check()
    iwae_batch = max(1, config.batch_size // 10)
    results["iwae"] = float(np.mean(in_batches(lambda batch: iwae(key_iwae, params, batch), x, iwae_batch)))
    return results
