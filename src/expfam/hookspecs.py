"""Hook specifications of the `expfam` plugin system.

Every component kind is contributed through one hook. A plugin module (or
object) implements any of them with `hookimpl` and is found through the
`expfam` entry-point group:

```toml
[project.entry-points.expfam]
my_plugin = "my_package.plugin"
```

The built-in families, blocks, block sets, objectives and datasets register
exactly this way. Hooks are called when a registry is built, never inside
`jit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

PROJECT_NAME = "expfam"
ENTRY_POINT_GROUP = "expfam"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def expfam_families() -> Sequence[type]:
    """Return exponential-family classes (subclasses of `ExponentialFamily`).

    Each class carries its registry name in the class variable `name`.
    """


@hookspec
def expfam_blocks() -> Sequence[type]:
    r"""Return interaction-block classes (subclasses of `InteractionBlock`).

    Each class carries its registry name in the class variable `name`; its parameters are
    one array of shape `param_shape()` (docs/blocks.md, "One parameter array").
    """


@hookspec
def expfam_block_sets() -> Mapping[str, Sequence[str]]:
    """Return named block sets, e.g. `{"hierarchical": ("xy",)}`."""


@hookspec
def expfam_objectives() -> Sequence[Any]:
    r"""Return loss-term objects (instances of `Objective`), each with a `name`.

    A term that is a frozen dataclass takes its fields as options (`[train.loss_options.NAME]`,
    `--loss-option NAME.KEY=VALUE`); the instance returned here carries the defaults.
    """


@hookspec
def expfam_datasets() -> Sequence[Any]:
    """Return dataset loaders (instances of `Dataset`), each with a `name`."""


@hookspec
def expfam_executors() -> Sequence[Any]:
    r"""Return sweep executors (objects with `name`, `description`, `remote` and `run`), each with a `name`.

    An executor runs a sweep's units of work (stacked groups) somewhere: this machine's processes
    (`local`), a Dask cluster (`dask`), ... (the protocol:
    [`Executor`][expfam.experiment.sweeps.executor.Executor]; docs/writing-plugins.md).
    """


@hookspec
def expfam_trackers() -> Sequence[type]:
    r"""Return tracker classes (implementing [`Tracker`][expfam.tracker.Tracker]), each with a `name`.

    A class is made with keyword arguments only, `uri`, `base` and `experiment` (see
    [`expfam.tracker`][expfam.tracker]); `expfam train --track NAME` and `[track] trackers` name it.
    """
