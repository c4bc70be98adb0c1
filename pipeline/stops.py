"""Stretches of work that a stop request (SIGINT, SIGTERM) may not cut in two: an ingest's
commits. A stop that arrives meanwhile waits for the stretch to end, then unwinds as usual;
by then the ingest has committed, and says so. (SIGKILL cannot wait: the Delta log decides.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending: list[int] = []


class Deferred(BaseException):
    """A stop request that waited for the end of a held stretch."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(f"signal {signal_number}")


def holding() -> bool:
    """Whether a stop request must wait now (the signal handler asks)."""
    return _depth > 0


def defer(signal_number: int) -> None:
    _pending.append(signal_number)


@contextmanager
def held() -> Iterator[None]:
    """Run the body to its end whatever stop request arrives; raise the first one after."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _pending and not _depth:
        raise Deferred(_pending[0])
