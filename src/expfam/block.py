r"""The interaction-block base class (docs/blocks.md).

A block is a bilinear coupling between the observable's coupled statistic
`s ∈ ℝ^D` and the latent statistics `s_Z(z)`. It is defined by a linear map
`L_b` from latent statistics to an offset of the observable's natural
parameters, and its adjoint `L_bᵀ` from observable statistics to an offset
of the posterior's natural parameters:

$$
\theta_X(z) = a + \sum_b L_b(s_Z(z)),\qquad
s\cdot L_b(s_Z(z)) = L_b^\top(s)\cdot s_Z(z)\quad\text{for all } s, z.
$$

A plugin implements four members: [`init`][expfam.block.InteractionBlock.init],
[`offset_from_statistics`][expfam.block.InteractionBlock.offset_from_statistics] (the linear map on any latent
statistics, e.g. posterior means), [`offset`][expfam.block.InteractionBlock.offset] (the same map at sampled
states `(y, k)`, written to be fast) and [`adjoint`][expfam.block.InteractionBlock.adjoint]. Blocks are final
frozen dataclasses constructed as `Block(observable_size=D, latent_size=n, n_clusters=K)`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import jax

from expfam.errors import ConfigurationError
from expfam.family import Array

LatentStatistics = dict[str, Array]


@dataclass(frozen=True)
class ClusterAffine:
    r"""A block's offset written per cluster, affine in the latent statistics.

    $$
    L_b(s_Z(y, k)) = W s_Y(y) + [k \ge 1]\,(V_{k-1} s_Y(y) + u_{k-1})
    $$

    `shared` is `W` (`(D, n)`), `per_cluster` `V` (`(K−1, D, n)`) and `bias` the rows `u` (`(K−1, D)`); a part
    the block does not have is `None`. Blocks that return this from
    [`InteractionBlock.cluster_affine`][expfam.block.InteractionBlock.cluster_affine] let the model evaluate
    all of them at sampled states as one grouped product
    ([`expfam.affine.cluster_affine_sorted`][expfam.affine.cluster_affine_sorted]).
    """

    shared: Array | None = None
    per_cluster: Array | None = None
    bias: Array | None = None


class InteractionBlock(abc.ABC):
    r"""Abstract interaction block; the registry name is the class variable `name`.

    Fields of concrete blocks: `observable_size` (D, the observable's coupled
    size), `latent_size` (n) and `n_clusters` (K).

    **One array of parameters.** A block's parameters are *one* array of shape
    `param_shape()`: `init` returns it, and `offset`, `offset_from_statistics`, `adjoint`
    and `cluster_affine` receive it. A dict, tuple or list of arrays is refused when the
    model is built ([`check_block_params`][expfam.block.check_block_params]). A block with
    several factors packs them into one array (e.g. stack `U` `(D, r)` and `V` `(n, r)` as
    one `(D + n, r)` array) and slices them apart in its methods; pytree parameters are
    planned with the model redesign.
    """

    name: ClassVar[str]
    #: `True` when the offset is linear in `s_Y(y)` alone (`L_b(s_Z(y, k)) = 0` whenever
    #: `s_Y(y) = 0`, as for `xy` and `xyk`): the model then skips the block where it
    #: evaluates `θ_X(y = 0, k)` for the cluster correction `ρ_k`. `False` is always safe.
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
        """`L_b(s_Z)` for one set of latent statistics `{"b_y", "W_yk", "b_k"}` → shape `(D,)`."""

    @abc.abstractmethod
    def offset(self, params: Array, y: Array, k: Array) -> Array:
        """`L_b(s_Z(y_s, k_s))` for sampled states: `y` `(S, n)`, `k` `(S,)` → `(S, D)`."""

    @abc.abstractmethod
    def adjoint(self, params: Array, statistic: Array) -> LatentStatistics:
        """`L_bᵀ(s)` for observable statistics `(B, D)`: the posterior offsets this block adds.

        Returns only the entries it touches, each with a leading batch axis
        (`"b_y"` `(B, n)`, `"W_yk"` `(B, n, K−1)`, `"b_k"` `(B, K−1)`).
        """

    def cluster_affine(self, params: Array) -> ClusterAffine | None:
        """The offset as a [`ClusterAffine`][expfam.block.ClusterAffine] form, or `None` (the default) when it is not one.

        Optional: a block that returns `None` is evaluated by
        [`offset`][expfam.block.InteractionBlock.offset], and the model then evaluates every block that way.
        """
        del params
        return None


def check_block_params(block: InteractionBlock) -> None:
    r"""Refuse a block whose `init` does not return one array of shape `param_shape()`.

    Shapes only (`jax.eval_shape`, nothing is computed); called when a model is built
    ([`build_model`][expfam.builder.build_model]) and when it is initialised.

    Raises:
        ConfigurationError: naming the block, what its `init` returned and the fix.
    """
    name = f"block {getattr(block, 'name', '?')!r} ({type(block).__name__})"
    returned = jax.eval_shape(block.init, jax.random.key(0))
    if not isinstance(returned, jax.ShapeDtypeStruct):
        raise ConfigurationError(
            f"{name}: init returned {_describe(returned)}, but a block's parameters must be one array of shape "
            "param_shape(); pack the factors into one array (e.g. concatenate or stack them) and slice them "
            "apart in offset, offset_from_statistics and adjoint (docs/blocks.md, 'One parameter array')",
            offending=_describe(returned),
        )
    expected = tuple(block.param_shape())
    if tuple(returned.shape) != expected:
        raise ConfigurationError(
            f"{name}: init returned an array of shape {tuple(returned.shape)}, but param_shape() is {expected}; "
            "make the two agree",
            offending=tuple(returned.shape),
        )


def _describe(value: Any) -> str:
    r"""`a dict with keys ['U', 'V']`, `a tuple of 2 arrays`, ...: what `init` returned, in words."""
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def register_block(cls: type[Any]) -> type[Any]:
    """Class decorator: make a frozen dataclass block a static pytree (hashable, no leaves)."""
    jax.tree_util.register_static(cls)
    return cls
