r"""Shape checks for observations: the trailing shape is checked against a family, never guessed.

A family describes one observation by [`data_shape`][expfam.family.ExponentialFamily.data_shape]
(`(D,)` for the per-pixel families). [`as_observations`][expfam.shapes.as_observations] turns what a
user passes — a batch `(B,) + data_shape`, one observation `data_shape`, or
images `(B, height, width)` / one `(height, width)` image when an image shape is
known — into a batch, and refuses anything else with a [`ShapeError`][expfam.errors.ShapeError]
that names the shapes.

Examples:
    >>> from expfam.families.binomial import Binomial
    >>> batch, single = as_observations(Binomial(4, n_trials=2), [[0, 1, 2, 0]])
    >>> batch.shape, single
    ((1, 4), False)
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from expfam.errors import ShapeError


class ExponentialFamily(Protocol):
    """What a shape check reads of a family ([`expfam.family.ExponentialFamily`][expfam.family.ExponentialFamily] has it)."""

    @property
    def data_shape(self) -> tuple[int, ...]: ...

    def describe(self) -> str: ...


def as_observations(
    family: ExponentialFamily, x: Any, *, image_shape: tuple[int, ...] | None = None, what: str = "x"
) -> tuple[jax.Array, bool]:
    """A batch of observations of `family` from `x`, and whether `x` was a single observation.

    Args:
        family: the observable family; one observation has shape `family.data_shape`.
        x: `(B,) + data_shape` or `data_shape`; with `image_shape` also
            `(B,) + image_shape` or `image_shape` (flattened to `data_shape`).
        image_shape: the shape of one observation as an image (e.g. `(8, 8)`), if any.
        what: the argument's name in the error message.

    Returns:
        `(batch, single)`: `batch` of shape `(B,) + data_shape`; `single` when `x`
        held one observation (then `B = 1`).

    Raises:
        ShapeError: any other shape, naming the shapes that would be accepted.
    """
    array = jnp.asarray(x)
    expected = tuple(family.data_shape)
    shapes = [expected]
    if image_shape is not None and tuple(image_shape) != expected:
        shapes.append(tuple(image_shape))
    for shape in shapes:
        if array.shape == shape:
            return array.reshape((1, *expected)), True
        if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
            return array.reshape((array.shape[0], *expected)), False
    accepted = " or ".join(f"(B, {', '.join(map(str, s))})" for s in shapes)
    single = " or ".join(str(s) for s in shapes)
    raise ShapeError(
        f"{what} has shape {tuple(array.shape)}, but {family.describe()} takes observations of shape "
        f"{single}: pass a batch {accepted}, or one observation {single}",
        offending=tuple(array.shape),
    )


def check_batch(family: ExponentialFamily, x: Any, *, what: str = "x") -> None:
    """Refuse `x` unless it is a batch `(B,) + family.data_shape` (static shapes: safe under `jit`).

    Raises:
        ShapeError: naming the shape found and the one expected.
    """
    shape = tuple(np.shape(x))
    expected = tuple(family.data_shape)
    if len(shape) != len(expected) + 1 or shape[1:] != expected:
        hint = " (one observation: add a leading axis, x[None])" if shape == expected else ""
        raise ShapeError(
            f"{what} has shape {shape}, but a batch of {family.describe()} observations has shape "
            f"(B, {', '.join(map(str, expected))}){hint}",
            offending=shape,
        )


__all__ = ["as_observations", "check_batch"]
