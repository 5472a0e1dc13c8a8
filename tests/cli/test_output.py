"""``--json`` output is strict JSON: paths as strings, NumPy scalars as numbers, NaN and infinities as null."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cli.output import emit_json, plain


def test_plain_converts_paths_scalars_and_non_finite_numbers():
    value = {"run_dir": Path("runs/a"), "nmi": np.float32(0.5), "r2": math.nan, "n": np.int64(3), "xs": (1, -math.inf)}
    assert plain(value) == {"run_dir": "runs/a", "nmi": 0.5, "r2": None, "n": 3, "xs": [1, None]}


def test_emit_json_prints_one_strict_document(capsys: pytest.CaptureFixture[str]):
    emit_json({"metrics": {"nmi": float("nan"), "purity": 0.75}})
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}")) == {
        "metrics": {"nmi": None, "purity": 0.75}
    }
