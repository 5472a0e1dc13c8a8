"""The configuration as text: TOML files read and values written, values coerced to their fields' types,
and the `NAME:VALUE` block texts parsed into typed values once, where a configuration is made.

A TOML table loads into [`Options`][expfam.experiment.config_text.Options], an immutable, hashable mapping.

`[train] block_schedule = "xyk:1000,xk:1000"` and `[train] block_learning_rates = "xyk:0.1"` stay text in
`config.toml` and `run.toml` (the file format is unchanged); a
[`TrainConfig`][expfam.experiment.config.TrainConfig] parses each once, on first use, into
[`block_starts`][expfam.experiment.config.TrainConfig.block_starts] (`{block: start step}`) and
[`block_factors`][expfam.experiment.config.TrainConfig.block_factors] (`{block: learning-rate factor}`),
and [`validate_config`][expfam.experiment.config.validate_config] reads them when a file or flags
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
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from expfam.errors import ConfigurationError


class Options(Mapping[str, Any]):
    """An immutable, hashable `{name: value}` table (values: TOML scalars, lists, or nested tables)."""

    __slots__ = ("_items",)
    _items: dict[str, Any]

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        frozen = {str(k): Options(v) if isinstance(v, Mapping) else _freeze(v) for k, v in dict(items or {}).items()}
        object.__setattr__(self, "_items", frozen)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"Options({self._items!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Options:
        return self

    def to_dict(self) -> dict[str, Any]:
        """A plain nested `dict` (lists for sequences)."""
        return {
            k: v.to_dict() if isinstance(v, Options) else (list(v) if isinstance(v, tuple) else v)
            for k, v in self.items()
        }


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The TOML mapping of the file `path` (`what`: "config file", "sweep file", for the messages).

    Raises:
        ConfigurationError: `path` is missing, a folder, unreadable, not UTF-8 or not TOML.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(
            f"{what} {str(path)!r} is a folder, not a file; pass a .toml file", offending=str(path)
        )
    if not path.exists():  # a readable non-regular file (/dev/null, a pipe as /dev/fd/N) is read like a file
        raise ConfigurationError(f"{what} {str(path)!r} does not exist; check the path", offending=str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"{what} {str(path)!r} cannot be read ({error.strerror or error}); check its permissions",
            offending=str(path),
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{what} {str(path)!r} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}); save it as UTF-8 TOML",
            offending=str(path),
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML ({error})", offending=str(path)) from None


def toml_value(value: Any) -> str:
    """`value` as TOML text (booleans, numbers with inf and nan, tables inline, arrays, quoted strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def toml_key(key: str) -> str:
    """`key` bare when TOML allows it, else quoted."""
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else toml_value(key)


def coerce_value(section: str, key: str, value: Any, expected: type) -> Any:
    """`value` of `[section] key` as the field's type `expected` (ints for floats, tables as [`Options`][expfam.experiment.config_text.Options]).

    Raises:
        ConfigurationError: naming the key, the value found and the type expected.
    """
    where = f"[{section}] {key}"
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if expected is str and isinstance(value, str):
        return value
    if expected is bool and isinstance(value, bool):
        return value
    if expected is Options and isinstance(value, Mapping):
        if key in ("block_options", "loss_options") and not all(isinstance(v, Mapping) for v in value.values()):
            what, example = ("block", "xy") if key == "block_options" else ("loss term", "l2")
            raise ConfigurationError(
                f"{where} must hold one table per {what}, e.g. [{section}.{key}.{example}], got {value!r}",
                offending=key,
            )
        if key == "loss_weights":
            return Options({name: coerce_value(section, f"{key}.{name}", w, float) for name, w in value.items()})
        return Options(value)
    kind = "a table" if expected is Options else expected.__name__
    raise ConfigurationError(
        f"{where} must be {kind}, got {type(value).__name__} {value!r}; fix the value",
        offending=key,
    )


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


__all__ = [
    "Options",
    "coerce_value",
    "parse_block_learning_rates",
    "parse_block_schedule",
    "read_toml",
    "toml_key",
    "toml_value",
]
