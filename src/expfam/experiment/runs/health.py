r"""Warnings about a run's numbers: a chunk's ELBO far below the uniform distribution's, and cluster collapse."""

from __future__ import annotations

import math
from collections.abc import Mapping


def collapse_warning(metrics: Mapping[str, float], n_clusters: int) -> str | None:
    """A warning when fewer than half of the `K` clusters are active (hold a test point), else `None`.

    Such a run has collapsed: its NMI compares a coarser clustering than asked for.
    """
    active = metrics.get("active_clusters", math.nan)
    if math.isnan(active) or active >= n_clusters / 2:
        return None
    return (
        f"cluster collapse: only {active:.0f} of {n_clusters} clusters are active on the test split "
        "(below half); try a larger posterior_entropy_weight (spreads each batch over the clusters), "
        "a longer kl_warmup_steps, or fewer clusters"
    )


#: How many times worse than the uniform distribution a chunk's ELBO may be before a warning (docs/training.md).
ELBO_FLOOR_FACTOR = 100.0


def elbo_floor(data_dim: int, n_trials: int) -> float:
    r"""The lowest sane ELBO per observation: $-100\,D\log(N+1)$.

    Every observation is $D$ counts in $0..N$, so the uniform distribution over them scores
    $\log p(x) = -D\log(N+1)$ whatever the family; a model that does a hundred times worse
    over a whole chunk is not learning (a learning rate far too large, a loss weight that
    swamps the ELBO), even at its random start (about 1 to 5 times worse).
    """
    return -ELBO_FLOOR_FACTOR * data_dim * math.log(n_trials + 1)


def elbo_warning(elbo: float, *, data_dim: int, n_trials: int, step: int, learning_rate: float) -> str | None:
    r"""A warning when a chunk's mean ELBO is below [`elbo_floor`][expfam.experiment.runs.health.elbo_floor], else `None`."""
    floor = elbo_floor(data_dim, n_trials)
    if not math.isfinite(elbo) or elbo >= floor:  # a non-finite ELBO is a divergence, reported as such
        return None
    return (
        f"the ELBO per observation over the chunk ending at step {step} is {elbo:.4g}, below {floor:.4g} "
        f"(a hundred times the uniform distribution's {floor / ELBO_FLOOR_FACTOR:.4g} over {data_dim} counts in "
        f"0..{n_trials}): training is not working; lower --learning-rate (now {learning_rate:g}) or the loss "
        "weights that swamp the ELBO"
    )


__all__ = ["ELBO_FLOOR_FACTOR", "collapse_warning", "elbo_floor", "elbo_warning"]
