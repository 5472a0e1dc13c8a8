"""Machine-readable output of `--json`: one JSON document on stdout, strict JSON (no NaN)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

#: The `--json` option shared by `train`, `evaluate` and `compare`.
JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout instead of the table (non-finite numbers: null)."),
]


def plain(value: Any) -> Any:
    """`value` with paths as strings, tuples as lists, NumPy scalars as numbers and NaN/±inf as `None`."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # NumPy and JAX scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_json(document: Mapping[str, Any]) -> None:
    """Print `document` as strict JSON on one line of stdout."""
    typer.echo(json.dumps(plain(document), allow_nan=False, sort_keys=False))
