r"""Plugin options: the fields of a plugin's dataclass, checked by name before the plugin is built.

Blocks, loss terms and datasets take their options the same way (`[model.block_options.NAME]`,
`[train.loss_options.NAME]`, `[data.options]`, and the matching flags): an option is a field of
the plugin's frozen dataclass, and a name that is not one is refused with the names that are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from expfam.errors import ConfigurationError


def option_names(plugin: Any, *, exclude: Iterable[str] = ()) -> list[str]:
    """The options `plugin` (a class or an instance) accepts: its dataclass fields less `exclude`, in order.

    A plugin that is not a dataclass accepts none.
    """
    if not dataclasses.is_dataclass(plugin):
        return []
    excluded = set(exclude)
    return [field.name for field in dataclasses.fields(plugin) if field.name not in excluded]


def check_option_names(options: Mapping[str, Any], accepted: Iterable[str], *, what: str, where: str) -> None:
    """Refuse an option that is not one of `accepted`.

    Args:
        options: the options given.
        accepted: the options the plugin has ([`option_names`][expfam.options.option_names]).
        what: the plugin, as the message names it (`"loss term 'l2'"`).
        where: where options are set, for the message (`"[data.options] in a run.toml"`).

    Raises:
        ConfigurationError: `<what> has no option(s) …; it accepts … (<where>)`.
    """
    accepted = list(accepted)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigurationError(
            f"{what} has no option(s) {', '.join(unknown)}; it accepts {', '.join(accepted) or 'no options'} ({where})",
            offending=unknown,
        )


__all__ = ["check_option_names", "option_names"]
