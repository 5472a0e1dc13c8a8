r"""Ctrl-C and SIGTERM in the `expfam` command: one `interrupted:` line, exit status 130, never a crash.

Python's default turns SIGINT into a `KeyboardInterrupt` raised wherever the main thread
happens to be. In a JAX program three of those places break the process:

- the import of a compiled extension: jaxlib's nanobind module is freed half-initialised
  (`nb_module_free`) and the process dies with a segmentation fault, or the import fails
  with `ImportError: Encountered an error while initializing the extension`;
- a JAX host callback: the exception is logged and dropped, and the run goes on;
- a wait for XLA work: jaxlib polls for signals while it waits for a compilation, so the
  wait ends with the exception but the compilation goes on in XLA's thread pool. The
  interpreter then exits and frees the client under that thread, which crashes in
  `SingleDeviceSharding::Create` through a freed device (exit 139 after the
  `interrupted:` line).

So the command line never raises from a signal handler. [`install`][expfam.interrupts.install]
(the first thing the entry point does, before JAX is imported) sets handlers for SIGINT and
SIGTERM that work in one of two modes:

- `exit` (from start-up until the first file is written, and for the commands that write
  nothing): flush stdout, print `interrupted: <message>` and leave at once with
  `os._exit(130)`. Nothing is on disk to protect, and a process that ends without
  finalisation cannot crash in XLA's threads.
- `defer` (from [`hold`][expfam.interrupts.hold], called just before a run folder is written):
  the signal is only recorded. [`check`][expfam.interrupts.check], called at safe points (before
  and between training chunks, between evaluation stages and plots), raises
  `KeyboardInterrupt` there, in plain Python with no XLA work in flight; the command then
  writes its checkpoint, marks the run `interrupted` and returns through the normal exit
  path with status 130. A second signal leaves at once (as `exit`), with the message of
  that moment.

Without [`install`][expfam.interrupts.install] (the Python API, tests that call the app in
process) nothing changes: no handler is set and [`check`][expfam.interrupts.check] never raises.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Exit status of an interrupted command (128 + SIGINT, as a shell reports Ctrl-C).
INTERRUPTED_STATUS = 130
#: The signals handled.
SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)

Message = str | Callable[[], str]


class _State:
    installed = False
    mode = "exit"  # "exit", "defer" or "raise"
    pending: int | None = None
    stopping = False  # check() raised: the command is cleaning up; another signal leaves at once
    message: Message = "nothing was written"


_state = _State()


def _text(message: Message) -> str:
    try:
        return message() if callable(message) else message
    except Exception:  # the message reads the run folder; a failure must not stop the exit
        return "stopped; see the run folder"


def _leave(message: Message) -> None:
    """Flush stdout, print `interrupted: <message>` on stderr and end the process with status 130."""
    text = " ".join(_text(message).split())
    with contextlib.suppress(Exception):  # stdout may be a closed pipe, or busy in the frame we interrupted
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"\ninterrupted: {text}\n".encode())
    os._exit(INTERRUPTED_STATUS)


def _handle(signum: int, frame: Any) -> None:
    if _state.mode == "raise":
        raise KeyboardInterrupt(f"signal {signum}")
    if _state.mode == "defer" and _state.pending is None and not _state.stopping:
        _state.pending = signum
        return
    _leave(_state.message)


def install(message: Message = "nothing was written") -> None:
    r"""Handle SIGINT and SIGTERM as this module describes, in mode `exit` with `message`.

    Main thread only (elsewhere, and a second time: nothing happens). A SIGINT that the parent set to be ignored
    (`nohup`, a background job of a non-interactive shell) stays ignored.
    """
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    _state.mode, _state.pending, _state.stopping, _state.message = "exit", None, False, message
    for signum in SIGNALS:
        if signum == signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN:
            continue
        signal.signal(signum, _handle)
    _state.installed = True


def installed() -> bool:
    r"""Whether [`install`][expfam.interrupts.install] set the handlers in this process."""
    return _state.installed


def set_message(message: Message) -> None:
    r"""The text after `interrupted:` when a signal ends the process at once (a callable: read then)."""
    _state.message = message


def hold(message: Message | None = None) -> None:
    r"""From now on a signal is recorded and raised by [`check`][expfam.interrupts.check] (mode `defer`).

    Call it before the first file of a run is written. `message`: the text of a second
    signal, which ends the process at once.
    """
    if message is not None:
        _state.message = message
    if _state.mode == "exit":
        _state.mode = "defer"


def raise_on_signal() -> None:
    r"""Mode `raise`: a signal raises `KeyboardInterrupt` where it lands (the sweep, which handles it)."""
    _state.mode = "raise"


def check() -> None:
    r"""A safe point: raise `KeyboardInterrupt` if a signal was recorded since the last one.

    Raises:
        KeyboardInterrupt: a SIGINT or SIGTERM arrived while the command held signals.
    """
    signum = _state.pending
    if signum is not None:
        _state.pending, _state.stopping = None, True
        raise KeyboardInterrupt(f"signal {signum}")


def finished() -> None:
    r"""The command is done: ignore SIGINT and SIGTERM while the interpreter exits.

    Python puts its own handlers back to the system default as it finalises, so a signal in
    those last moments would kill a process whose command had already succeeded (status -2 or
    -15, its last output printed). Ignored handlers survive that, and SIGKILL still works.
    """
    if _state.installed and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def settle() -> None:
    r"""Wait for JAX's pending effects (host callbacks) so no XLA work runs while the process exits."""
    jax = sys.modules.get("jax")
    if jax is not None:
        with contextlib.suppress(Exception):
            jax.effects_barrier()


__all__ = [
    "INTERRUPTED_STATUS",
    "SIGNALS",
    "check",
    "finished",
    "hold",
    "install",
    "installed",
    "raise_on_signal",
    "set_message",
    "settle",
]
