"""Training progress on stderr: a bar with ETA and the latest ELBO, NMI and R².

On a terminal the line is redrawn in place; otherwise (a log file, a pipe, a
test runner) one plain line is written per logged chunk, so the output stays
readable without a TTY.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import TextIO


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _value(row: Mapping[str, float], key: str, spec: str) -> str:
    value = row.get(key)
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


class ProgressBar:
    """A `expfam.experiment.runs.recorder.ProgressCallback` drawing to `stream` (default: stderr at call time).

    The ETA uses the speed since the first chunk, which excludes compilation
    (it reads `?` until the second chunk).
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 24, interactive: bool | None = None) -> None:
        self.stream = stream
        self.width = width
        self.interactive = interactive
        self.started = time.monotonic()
        self.first: tuple[float, int] | None = None
        self.drawn = False

    def _stream(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def line(self, step: int, n_steps: int, row: Mapping[str, float], now: float) -> str:
        """The text of one update."""
        fraction = step / n_steps if n_steps else 1.0
        filled = round(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        if step >= n_steps:
            eta = 0.0
        elif self.first is not None and step > self.first[1]:
            eta = (now - self.first[0]) / (step - self.first[1]) * (n_steps - step)
        else:
            eta = math.inf  # the first chunk includes compilation: no speed to go by yet
        return (
            f"[{bar}] {100 * fraction:3.0f}% step {step}/{n_steps} "
            f"elapsed {format_duration(now - self.started)} ETA {format_duration(eta)} | "
            f"ELBO {_value(row, 'elbo', '.2f')} NMI {_value(row, 'nmi', '.3f')} R² {_value(row, 'r2', '.3f')}"
        )

    def __call__(self, step: int, n_steps: int, row: Mapping[str, float]) -> None:
        now = time.monotonic()
        text = self.line(step, n_steps, row, now)
        if self.first is None:
            self.first = (now, step)
        stream = self._stream()
        interactive = self.interactive if self.interactive is not None else stream.isatty()
        if interactive:
            stream.write("\r" + text + "\033[K")
            self.drawn = True
            if step >= n_steps:
                self.close()
        else:
            stream.write(text + "\n")
        stream.flush()

    def close(self) -> None:
        """End a line redrawn in place."""
        if self.drawn:
            self._stream().write("\n")
            self._stream().flush()
            self.drawn = False

    def message(self, text: str) -> None:
        """Print a line of text (ending a bar in progress first)."""
        self.close()
        self._stream().write(text + "\n")
        self._stream().flush()
