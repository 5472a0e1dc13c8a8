"""Devices of a training run: the mesh, the checks of `--devices`, and how arrays are split over it.

One run splits each batch over the devices of a one-axis mesh `("batch",)` (data parallel,
parameters replicated); a stacked group spreads its trials over a mesh `("trials",)`, each
device running its own trials (`jax.shard_map`). On a CPU,
`XLA_FLAGS=--xla_force_host_platform_device_count=N` makes `N` host devices.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig


def check_device_count(devices: int | None) -> None:
    """`devices` (`--devices`) is between 1 and the number of visible devices (`None`: one).

    Raises:
        ConfigurationError: naming the count asked for, the count visible and the fix.
    """
    if devices is None:
        return
    available = jax.devices()
    if devices < 1 or devices > len(available):
        raise ConfigurationError(
            f"--devices {devices}: {len(available)} {jax.default_backend()} device(s) visible; ask for 1 to "
            f"{len(available)} (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N host devices)",
            offending=devices,
        )


def device_mesh(devices: int | None, axis: str) -> Mesh | None:
    """A one-axis mesh over the first `devices` devices (`None` for one device or `None`).

    Raises:
        ConfigurationError: fewer devices are visible than asked for.
    """
    if devices is None or devices == 1:
        return None
    check_device_count(devices)
    return Mesh(np.array(jax.devices()[:devices]), (axis,))


def partition(*axes: str | None) -> PartitionSpec:
    """`PartitionSpec(*axes)`: dimension `i` split over mesh axis `axes[i]` (`None`: not split)."""
    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]


def check_batch_split(config: TrainConfig, devices: int | None) -> None:
    """A data-parallel run splits each batch evenly: `batch_size` must be a multiple of `devices`.

    Raises:
        ConfigurationError: naming the batch size, the device count and a batch size that splits.
    """
    if devices is not None and devices > 1 and config.batch_size % devices:
        raise ConfigurationError(
            f"batch_size {config.batch_size} does not split over {devices} devices; "
            f"use a multiple of {devices} (e.g. {devices * max(1, config.batch_size // devices)})",
            offending="batch_size",
        )


def shard_map(function: Callable[..., Any], *, mesh: Any, in_specs: Any, out_specs: Any) -> Callable[..., Any]:
    """`jax.shard_map` without replication checks; on JAX releases before it was public, the
    experimental one (the package's floor is `jax>=0.4.30`)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    experimental = importlib.import_module("jax.experimental.shard_map")
    spread: Callable[..., Any] = experimental.shard_map(
        function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False
    )
    return spread


__all__ = ["check_batch_split", "check_device_count", "device_mesh", "partition", "shard_map"]
