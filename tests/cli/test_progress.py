"""The progress bar: in place on a terminal, one line per chunk otherwise."""

from __future__ import annotations

import io

from cli.progress import ProgressBar, format_duration

ROW = {"step": 10, "elbo": -123.456, "nmi": 0.5, "r2": float("nan")}


def test_plain_lines_without_a_tty():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(10, 30, ROW)
    bar(20, 30, ROW)
    bar(30, 30, ROW)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("[########----------------]  33% step 10/30 ")
    assert "ETA ?" in lines[0] and "ETA ?" not in lines[1] and "ETA 0s" in lines[2]
    assert lines[0].endswith("| ELBO -123.46 NMI 0.500 R² —")


def test_redrawn_in_place_on_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(stream, interactive=True)
    bar(10, 20, ROW)
    bar.message("evaluating")
    bar(20, 20, ROW)
    text = stream.getvalue()
    assert text.startswith("\r[") and "\nevaluating\n\r[" in text and text.endswith("\n")


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 59, 61, 3600 * 2 + 120)] == ["0s", "59s", "1m01s", "2h02m"]
    assert format_duration(float("inf")) == "?"
