"""Parsing the configuration's `NAME:VALUE` texts into typed values, once, where a configuration is made.

`[train] block_schedule = "xyk:1000,xk:1000"` and `[train] block_learning_rates = "xyk:0.1"` stay text in
`config.toml` and `run.toml` (the file format is unchanged); a
[`TrainConfig`][expfam.experiment.config.TrainConfig] parses each once, on first use, into
[`block_starts`][expfam.experiment.config.TrainConfig.block_starts] (`{block: start step}`) and
[`block_factors`][expfam.experiment.config.TrainConfig.block_factors] (`{block: learning-rate factor}`),
and [`validate_config`][expfam.experiment.config_checks.validate_config] reads them when a file or flags
are loaded, so a malformed text is refused there, naming the item and the fix.

Examples:
    >>> parse_block_schedule("xyk:1000, xk:250")
    {'xyk': 1000, 'xk': 250}
    >>> parse_block_learning_rates("xyk:0.1")
    {'xyk': 0.1}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from expfam.errors import ConfigurationError


def _block_items(text: str, key: str, unit: str) -> Iterator[tuple[str, str, str]]:
    """`(item, name, value)` of each non-empty `NAME:VALUE` item of `text`, each block once.

    Raises:
        ConfigurationError: a block named twice (the value's own checks are the caller's).
    """
    seen: set[str] = set()
    for item in (piece.strip() for piece in text.split(",")):
        if not item:
            continue
        name, sep, value = (part.strip() for part in item.partition(":"))
        yield item, (name if sep else ""), value
        if name in seen:
            raise ConfigurationError(
                f"[train] {key} names block {name!r} twice; give each block one {unit}", offending=key
            )
        seen.add(name)


def parse_block_schedule(text: str) -> dict[str, int]:
    """`"xyk:1000,xk:1000"` as `{"xyk": 1000, "xk": 1000}`: the step at which each named block starts.

    A block named with step `s > 0` starts at zero and its updates are held at zero
    before step `s` (docs/collapse.md); blocks not named start at step 0. The empty
    text is no schedule.

    Raises:
        ConfigurationError: an item that is not `NAME:STEP` with a whole `STEP ≥ 0`, or a
            block named twice.
    """
    schedule: dict[str, int] = {}
    for item, name, step_text in _block_items(text, "block_schedule", "start step"):
        if not name or re.fullmatch(r"[+-]?\d+", step_text) is None:
            raise ConfigurationError(
                f"[train] block_schedule item {item!r} is not NAME:STEP; write e.g. 'xyk:1000,xk:1000'",
                offending="block_schedule",
            )
        if int(step_text) < 0:
            raise ConfigurationError(
                f"[train] block_schedule: block {name!r} starts at step {step_text}; steps must be ≥ 0 (0: from the start)",
                offending="block_schedule",
            )
        schedule[name] = int(step_text)
    return schedule


def parse_block_learning_rates(text: str) -> dict[str, float]:
    """`"xyk:0.1,xk:0.1"` as `{"xyk": 0.1, "xk": 0.1}`: each named block's learning rate as a
    multiple of `learning_rate` (blocks not named: 1). The empty text is no scaling.

    Raises:
        ConfigurationError: an item that is not `NAME:FACTOR` with a finite `FACTOR > 0`, or a
            block named twice.
    """
    factors: dict[str, float] = {}
    for item, name, value in _block_items(text, "block_learning_rates", "factor"):
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not name or not math.isfinite(factor) or factor <= 0:
            raise ConfigurationError(
                f"[train] block_learning_rates item {item!r} is not NAME:FACTOR with a factor > 0; "
                "write e.g. 'xyk:0.1,xk:0.1'",
                offending="block_learning_rates",
            )
        factors[name] = factor
    return factors


__all__ = ["parse_block_learning_rates", "parse_block_schedule"]
