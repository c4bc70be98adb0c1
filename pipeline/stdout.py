"""The command's standard output, whose failures are told apart from the command's own.

A full disk under `> out.csv`, a closed stdout (`>&-`) or a reader that stopped reading
(`| head`) fail a write with the same `OSError`s a warehouse's file gives; the CLI must say
which it was (the warehouse is fine, the output is lost), not call it a bug.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import Any, TextIO

_failures: list[OSError] = []


class Stdout:
    """`stream` (None: stdout is closed), remembering the `OSError` of a write or flush."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        written: int = self._call("write", text)
        return written

    def flush(self) -> None:
        if self._stream is not None:  # closed: nothing was written, nothing to flush
            self._call("flush")

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def _call(self, name: str, *args: Any) -> Any:
        try:
            if self._stream is None:
                raise OSError(errno.EBADF, "stdout is closed")
            return getattr(self._stream, name)(*args)
        except OSError as exc:
            _failures.append(exc)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Put `Stdout` in `sys.stdout`'s place (once). Text the terminal's encoding cannot hold
    is written escaped rather than stopping the output."""
    if isinstance(sys.stdout, Stdout):
        return
    for stream, descriptor in ((sys.stdout, 1), (sys.stderr, 2)):
        if stream is None:
            # Closed from the start (`>&-`): the next file opened would be given its
            # descriptor, and a child process would take that file for its own stdout. The
            # null device holds the place; writing stays refused (`Stdout(None)`).
            _hold(descriptor)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    sys.stdout = Stdout(sys.stdout)


def silence() -> None:
    """From here on what is left for stdout goes nowhere: the interpreter's flush at exit
    would otherwise print a traceback of what stdout failed to take. A stdout closed from the
    start has nothing to flush (its descriptor is held by `install`)."""
    stream = sys.stdout._stream if isinstance(sys.stdout, Stdout) else sys.stdout
    if stream is not None:
        with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's stand-in)
            _hold(stream.fileno())


def _hold(descriptor: int) -> None:
    with contextlib.suppress(OSError):
        opened = os.open(os.devnull, os.O_WRONLY)
        if opened != descriptor:
            os.dup2(opened, descriptor)
            os.close(opened)


def failure(exc: BaseException) -> OSError | None:
    """The failure of stdout that `exc` is, or that it arose from; None if it is not one."""
    seen: BaseException | None = exc
    for _ in range(50):  # a chain may loop
        if seen is None:
            break
        if any(seen is f for f in _failures):
            return seen  # type: ignore[return-value]
        seen = seen.__cause__ or seen.__context__
    return None
