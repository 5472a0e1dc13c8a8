r"""Checkpoints: the whole training state in one `checkpoint.npz`, written atomically.

The archive holds `params/<path>` (the parameter pytree, '/'-joined as in
`params.npz`), `opt_state/<i>` (the optimiser state's leaves in
`jax.tree` order), `step`, `key` and `data_key` (the raw key data of the
training and data-order streams). Reading it back needs the optimiser, whose
`init` gives the state's structure; any `optax.GradientTransformation` works.

Examples:
    >>> save_checkpoint(run_dir, state)                        # doctest: +SKIP
    >>> state = load_checkpoint(run_dir, optimizer)            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from expfam.experiment.config import TrainConfig
from expfam.experiment.runs.atomic import RunDirectoryError, atomic_open
from expfam.experiment.runs.files import flatten_params, read_archive, unflatten_params
from expfam.experiment.runs.layout import CHECKPOINT_FILE
from expfam.experiment.train.step import TrainState

_DAMAGED = "it is damaged or was edited — restore it, or train the run again with --overwrite"


def save_checkpoint(run_dir: str | Path, state: TrainState) -> Path:
    """Write `state` to `run_dir/checkpoint.npz` (temporary file, then rename)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    # Any: numpy's stubs type savez's keywords as its own options, not as array names
    arrays: dict[str, Any] = {f"params/{k}": v for k, v in flatten_params(state.params).items()}
    for index, leaf in enumerate(jax.tree.leaves(state.opt_state)):
        arrays[f"opt_state/{index}"] = np.asarray(leaf)
    arrays["step"] = np.asarray(state.step)
    arrays["key"] = np.asarray(jax.random.key_data(state.key))
    arrays["data_key"] = np.asarray(jax.random.key_data(state.data_key))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of `run_dir`'s checkpoint, or `None` when it has none."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    step = read_archive(path, "checkpoint").get("step")
    return None if step is None or step.size != 1 else int(step)


def load_checkpoint(run_dir: str | Path, optimizer: optax.GradientTransformation) -> TrainState:
    """The [`TrainState`][expfam.experiment.train.step.TrainState] saved by [`save_checkpoint`][expfam.experiment.runs.checkpoints.save_checkpoint].

    Args:
        run_dir: the run directory.
        optimizer: the optimiser the run trains with (its `init` gives the state's structure).

    Raises:
        RunDirectoryError: no checkpoint, or one that does not fit the optimiser.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise RunDirectoryError(
            f"{str(run_dir)!r} has no {CHECKPOINT_FILE} to resume from; the run was not checkpointed "
            "(set [train] checkpoint_every ≥ 1) or it finished — train it again",
            offending=str(path),
        )
    flat = read_archive(path, "checkpoint")
    missing = [key for key in ("step", "key", "data_key") if key not in flat]
    if missing or not any(key.startswith("params/") for key in flat):
        raise RunDirectoryError(
            f"{str(path)!r} lacks {', '.join(missing) or 'the parameters'}; it is damaged — train the run again",
            offending=str(path),
        )
    params: Any = jax.tree.map(
        jnp.asarray,
        unflatten_params({k.removeprefix("params/"): v for k, v in flat.items() if k.startswith("params/")}),
    )
    fresh = optimizer.init(params)
    structure = jax.tree.structure(fresh)
    count = sum(1 for key in flat if key.startswith("opt_state/"))
    expected = len(jax.tree.leaves(fresh))
    if count != expected:
        raise RunDirectoryError(
            f"{str(path)!r} holds {count} optimiser-state arrays but the optimiser has {expected}; "
            "resume with the optimiser the run was trained with",
            offending=str(path),
        )
    names = [f"opt_state/{index}" for index in range(count)]
    if any(name not in flat for name in names):
        raise RunDirectoryError(
            f"{str(path)!r} lacks optimiser-state arrays; it is damaged — train the run again", offending=str(path)
        )
    for name in ("step", "key", "data_key"):
        _check_array(path, name, flat[name])
    leaves = [jnp.asarray(flat[name]) for name in names]
    for leaf, expected_leaf in zip(leaves, jax.tree.leaves(fresh), strict=True):
        if leaf.shape != expected_leaf.shape:
            raise RunDirectoryError(
                f"{str(path)!r}: an optimiser-state array has shape {leaf.shape}, expected {expected_leaf.shape}; "
                "it is damaged — train the run again",
                offending=str(path),
            )
    return TrainState(
        params=params,
        opt_state=jax.tree.unflatten(structure, leaves),
        step=jnp.asarray(flat["step"], jnp.int32),
        key=jax.random.wrap_key_data(jnp.asarray(flat["key"])),
        bad_step=-jnp.ones((), jnp.int32),
        data_key=jax.random.wrap_key_data(jnp.asarray(flat["data_key"])),
    )


def _check_array(path: Path, name: str, value: np.ndarray) -> None:
    """`step` is one integer; `key` and `data_key` are raw keys of the default implementation's shape and dtype."""
    if name == "step":
        if value.shape != () or value.dtype.kind not in "iu":
            raise RunDirectoryError(
                f"{str(path)!r}: step has shape {value.shape} and dtype {value.dtype}, expected one integer; {_DAMAGED}",
                offending=str(path),
            )
        return
    expected = jax.random.key_data(jax.random.key(0))
    if value.shape != expected.shape or value.dtype != expected.dtype:
        raise RunDirectoryError(
            f"{str(path)!r}: {name} has shape {value.shape} and dtype {value.dtype}, expected a random key of shape "
            f"{expected.shape} and dtype {expected.dtype}; {_DAMAGED}",
            offending=str(path),
        )


def verify_checkpoint(
    run_dir: str | Path, state: TrainState, config: TrainConfig, history: Sequence[Mapping[str, float]]
) -> None:
    """Trust a loaded checkpoint only if it agrees with its run: its step within `0..n_steps`, a step the
    run's `history.csv` reached (a chunk boundary; 0 for a run stopped before its first chunk), and
    finite parameters.

    Raises:
        RunDirectoryError: one line naming `checkpoint.npz` and what is wrong.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    step = int(state.step)
    if not 0 <= step <= config.n_steps:
        raise RunDirectoryError(
            f"{str(path)!r}: step {step} is outside 0..{config.n_steps} (n_steps of config.toml); {_DAMAGED}",
            offending=str(path),
        )
    steps = [int(row["step"]) for row in history if "step" in row]
    if step != 0 and step not in steps:
        last = f"its last row is step {steps[-1]}" if steps else "it has no rows"
        raise RunDirectoryError(
            f"{str(path)!r}: step {step} is not a step of history.csv ({last}); {_DAMAGED}", offending=str(path)
        )
    bad = [name for name, value in flatten_params(state.params).items() if not np.all(np.isfinite(np.asarray(value)))]
    if bad:
        raise RunDirectoryError(
            f"{str(path)!r}: parameter {bad[0]!r} is not finite (NaN or inf) at step {step}; there is no finite "
            "checkpoint to resume from — train the run again with --overwrite (e.g. with a lower --learning-rate)",
            offending=str(path),
        )


__all__ = ["checkpoint_step", "load_checkpoint", "save_checkpoint", "verify_checkpoint"]
