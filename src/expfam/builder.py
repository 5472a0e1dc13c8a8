"""The typed model builder: from a [`ModelSpec`][expfam.builder.ModelSpec] to a [`Harmonium`][expfam.model.Harmonium].

Every name is looked up in the plugin registry and every size is validated
before anything is built, so a bad spec fails with one clear message.

Examples:
    >>> from expfam.builder import build_model
    >>> model = build_model(observable="binomial", observable_options={"n_trials": 16},
    ...                     data_dim=64, n_latent=8, n_clusters=10, blocks=["xy", "xk"])
    >>> model.block_names
    ('xy', 'xk')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expfam.block import check_block_params
from expfam.errors import ConfigurationError
from expfam.family import ExponentialFamily
from expfam.mixture import LatentMixture
from expfam.model import Harmonium
from expfam.options import check_option_names, option_names
from expfam.plugins import Registry, get_registry


@dataclass(frozen=True)
class ModelSpec:
    """What to build.

    Attributes:
        observable: registry name of the observable family (e.g. `"binomial"`).
        data_dim: number of observable coordinates `D`.
        n_latent: number of latent units `n`.
        n_clusters: number of clusters `K` (≥ 2).
        blocks: a block-set name (`"hierarchical"`, `"full"`) or a list of block names.
        observable_options: extra options of the observable family (e.g. `{"n_trials": 16}`).
        latent: registry name of the latent base family (default `"bernoulli"`).
        block_options: `{block name: {option: value}}`, extra constructor options of blocks.
    """

    observable: str = "binomial"
    data_dim: int = 64
    n_latent: int = 32
    n_clusters: int = 10
    blocks: str | Sequence[str] = "hierarchical"
    observable_options: Mapping[str, Any] = field(default_factory=dict)
    latent: str = "bernoulli"
    block_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"{name} must be an integer ≥ {minimum}, got {value!r}; pass a whole number of at least {minimum}",
            offending=value,
        )
    return value


def resolve_blocks(blocks: str | Sequence[str], registry: Registry) -> tuple[str, ...]:
    """Block names from a block-set name or a list of block names (each checked in the registry)."""
    if isinstance(blocks, str):
        if blocks in registry.entries["block_sets"]:
            names = registry.block_set(blocks)
        elif blocks in registry.entries["blocks"]:
            names = (blocks,)
        else:
            known_sets = ", ".join(registry.names("block_sets"))
            known_blocks = ", ".join(registry.names("blocks"))
            raise ConfigurationError(
                f"unknown block set or block {blocks!r}; block sets: {known_sets}; blocks: {known_blocks}",
                offending=blocks,
            )
    else:
        names = tuple(blocks)
    if not names:
        raise ConfigurationError("blocks is empty; give a block-set name or at least one block name", offending=names)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(f"blocks {duplicates} listed more than once; list each block once", offending=names)
    for name in names:
        registry.block(name)
    return names


def build_family(name: str, size: int, options: Mapping[str, Any], registry: Registry, role: str) -> ExponentialFamily:
    """Instantiate the family `name` with `size` and `options`; bad options are named."""
    cls = registry.family(name)
    try:
        family: ExponentialFamily = cls(size, **dict(options))
    except TypeError as error:
        raise ConfigurationError(
            f"{role} family {name!r} does not accept options {dict(options)!r} ({error}); "
            f"see `expfam plugins` and the family's documentation for its options",
            offending=options,
        ) from None
    return family


def build_block(
    name: str,
    observable_size: int,
    latent_size: int,
    n_clusters: int,
    options: Mapping[str, Any],
    registry: Registry,
) -> Any:
    """Instantiate the block `name` with its sizes and `options`; an option it does not accept is named."""
    cls = registry.block(name)
    reserved = sorted({"observable_size", "latent_size", "n_clusters"} & set(options))
    if reserved:
        raise ConfigurationError(
            f"block {name!r}: {reserved} are set from the model, not from block options; remove them",
            offending=reserved,
        )
    if dataclasses.is_dataclass(cls):  # otherwise the constructor's TypeError below names the problem
        accepted = sorted(option_names(cls, exclude=("observable_size", "latent_size", "n_clusters")))
        check_option_names(
            options, accepted, what=f"block {name!r}", where=f"[model.block_options.{name}] in a run.toml"
        )
    try:
        block = cls(observable_size=observable_size, latent_size=latent_size, n_clusters=n_clusters, **dict(options))
    except TypeError as error:
        raise ConfigurationError(
            f"block {name!r} does not accept options {dict(options)!r} ({error}); "
            "see the block's documentation for its options",
            offending=options,
        ) from None
    check_block_params(block)
    return block


def build_model(spec: ModelSpec | None = None, *, registry: Registry | None = None, **fields: Any) -> Harmonium:
    """Build a harmonium from a spec (or from the spec's fields as keywords).

    Args:
        spec: a [`ModelSpec`][expfam.builder.ModelSpec]; or leave it out and pass its fields as keywords.
        registry: where names are looked up (default: the installed plugins).

    Raises:
        ConfigurationError: a non-positive size, `n_clusters < 2`, an unknown
            name (listing the registered ones) or a latent family blocks cannot couple to.
    """
    if spec is None:
        spec = ModelSpec(**fields)
    elif fields:
        raise ConfigurationError("pass either a ModelSpec or keyword fields, not both", offending=fields)
    registry = registry or get_registry()
    data_dim = _positive("data_dim", spec.data_dim)
    n_latent = _positive("n_latent", spec.n_latent)
    n_clusters = _positive("n_clusters", spec.n_clusters, minimum=2)
    observable = build_family(spec.observable, data_dim, spec.observable_options, registry, "observable")
    latent = build_family(spec.latent, n_latent, {}, registry, "latent")
    if latent.param_shape != (n_latent,) or latent.coupling_index is not None:
        raise ConfigurationError(
            f"latent family {spec.latent!r} has parameters of shape {latent.param_shape}; blocks need a latent "
            f"with one natural parameter per unit, shape ({n_latent},): use 'bernoulli'",
            offending=spec.latent,
        )
    names = resolve_blocks(spec.blocks, registry)
    unused = sorted(set(spec.block_options) - set(names))
    if unused:
        raise ConfigurationError(
            f"block_options for {unused}, which the model does not use (its blocks: {', '.join(names)}); "
            "remove them or add the blocks",
            offending=unused,
        )
    blocks = tuple(
        build_block(name, observable.coupled_size, n_latent, n_clusters, spec.block_options.get(name, {}), registry)
        for name in names
    )
    return Harmonium(observable=observable, mixture=LatentMixture(latent, n_clusters), blocks=blocks)
