r"""The interaction-block base class (docs/blocks.md).

A block is a bilinear coupling between the observable's coupled statistic
``s ∈ ℝ^D`` and the latent statistics ``s_Z(z)``. It is defined by a linear map
``L_b`` from latent statistics to an offset of the observable's natural
parameters, and its adjoint ``L_bᵀ`` from observable statistics to an offset
of the posterior's natural parameters:

.. math::

    \theta_X(z) = a + \sum_b L_b(s_Z(z)),\qquad
    s\cdot L_b(s_Z(z)) = L_b^\top(s)\cdot s_Z(z)\quad\text{for all } s, z.

A plugin implements four members: :meth:`init`, :meth:`offset_from_statistics`
(the linear map on any latent statistics, e.g. posterior means),
:meth:`offset` (the same map at sampled states ``(y, k)``, written to be fast)
and :meth:`adjoint`. Blocks are final frozen dataclasses constructed as
``Block(observable_size=D, latent_size=n, n_clusters=K)``.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import jax

from expfam.family import Array

LatentStatistics = dict[str, Array]


class InteractionBlock(abc.ABC):
    """Abstract interaction block; the registry name is the class variable ``name``.

    Fields of concrete blocks: ``observable_size`` (D, the observable's coupled
    size), ``latent_size`` (n) and ``n_clusters`` (K).
    """

    name: ClassVar[str]
    #: ``True`` when the offset is linear in ``s_Y(y)`` alone (``L_b(s_Z(y, k)) = 0`` whenever
    #: ``s_Y(y) = 0``, as for ``xy`` and ``xyk``): the model then skips the block where it
    #: evaluates ``θ_X(y = 0, k)`` for the cluster correction ``ρ_k``. ``False`` is always safe.
    vanishes_at_zero_latent: ClassVar[bool] = False
    observable_size: int
    latent_size: int
    n_clusters: int

    @abc.abstractmethod
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the block's parameter array."""

    @abc.abstractmethod
    def init(self, key: Array) -> Array:
        """Random initial parameters (docs/model.md, "Parameters")."""

    @abc.abstractmethod
    def offset_from_statistics(self, params: Array, statistics: LatentStatistics) -> Array:
        """``L_b(s_Z)`` for one set of latent statistics ``{"b_y", "W_yk", "b_k"}`` → shape ``(D,)``."""

    @abc.abstractmethod
    def offset(self, params: Array, y: Array, k: Array) -> Array:
        """``L_b(s_Z(y_s, k_s))`` for sampled states: ``y`` ``(S, n)``, ``k`` ``(S,)`` → ``(S, D)``."""

    @abc.abstractmethod
    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        """``L_bᵀ(s)`` for observable statistics ``(B, D)``: the posterior offsets this block adds.

        Returns only the entries it touches, each with a leading batch axis
        (``"b_y"`` ``(B, n)``, ``"W_yk"`` ``(B, n, K−1)``, ``"b_k"`` ``(B, K−1)``).
        """


def register_block(cls: type[Any]) -> type[Any]:
    """Class decorator: make a frozen dataclass block a static pytree (hashable, no leaves)."""
    jax.tree_util.register_static(cls)
    return cls
