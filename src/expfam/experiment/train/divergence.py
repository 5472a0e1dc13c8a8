"""After a chunk: the divergence check, with the step and the term named, and the analytic ρ.

A chunk's state records the first step whose loss, term values or gradient were not finite
(`bad_step`; that step and every later one were not applied). [`accept_chunk`][expfam.experiment.train.divergence.accept_chunk]
turns it into a [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] that names the step, the
offending term (or the loss, or the gradient), every term's value at that step and the fix, with the last
finite parameters attached.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from expfam.errors import TrainingDivergedError
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.step import TrainState
from expfam.experiment.train.streams import stream_key
from expfam.model import Harmonium, Params


def diverged_error(
    history: Mapping[str, np.ndarray], offset: int, bad_step: int, params: Params
) -> TrainingDivergedError:
    """The error of a chunk that started at step `offset` and hit a non-finite value at `bad_step`.

    `history` is the chunk's per-step `{"loss": ..., term: ...}`; `params` the parameters kept
    (attached when finite).
    """
    row = bad_step - offset
    values = {name: float(series[row]) for name, series in history.items()}
    bad_terms = [name for name, value in values.items() if name != "loss" and not np.isfinite(value)]
    term = bad_terms[0] if bad_terms else ("loss" if not np.isfinite(values["loss"]) else "gradient")
    detail = ", ".join(f"{name}={value:.4g}" for name, value in values.items())
    if term == "gradient":  # every term was finite, its gradient was not
        what, fix = "the gradient is not finite", "Lower --learning-rate or raise --lr-warmup-steps"
    elif term == "loss":
        what, fix = "the total loss is not finite", "Lower --learning-rate"
    else:
        what, fix = f"term {term!r} is not finite", f"Lower --learning-rate or the weight of {term!r} (--loss)"
    finite = all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(params))
    if finite:
        kept = f"the last finite parameters (after {bad_step} steps) were kept"
    else:  # a finite gradient times a huge learning rate: the parameters before the bad step were not finite
        kept = f"the parameters were no longer finite after {bad_step} steps, so none were kept"
    return TrainingDivergedError(
        f"training diverged at step {bad_step}: {what} ({detail}); {kept}. {fix}",
        step=bad_step,
        term=term,
        last_params=params if finite else None,
    )


def _store_fitted_correction(model: Harmonium, params: Params, config: TrainConfig, step: int) -> Params:
    """In analytic ρ mode, write the least-squares `ρ_y` into the parameters (for evaluation and saving)."""
    key = jax.random.fold_in(stream_key(config.seed, "correction"), step)
    _, rho_y, _ = model.fit_correction(key, params, config.n_conj_samples)
    return {**params, "rho_y": rho_y}


def accept_chunk(
    model: Harmonium, config: TrainConfig, state: TrainState, piece: Mapping[str, np.ndarray], done: int
) -> TrainState:
    """The state after a chunk that started at step `done`, ready to commit.

    Raises [`TrainingDivergedError`][expfam.errors.TrainingDivergedError] (from
    [`diverged_error`][expfam.experiment.train.divergence.diverged_error]) when the chunk hit a non-finite
    step (`piece` is its per-step history); in analytic ρ mode stores the fitted `ρ_y`.
    """
    bad_step = int(state.bad_step)
    if bad_step >= 0:
        raise diverged_error(dict(piece), done, bad_step, state.params)
    if config.rho_mode == "analytic":
        state = state._replace(params=_store_fitted_correction(model, state.params, config, int(state.step)))
    return state


__all__ = ["accept_chunk", "diverged_error"]
