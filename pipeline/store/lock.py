"""One ingest at a time on a local warehouse; on object storage, Delta's commit decides."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from pipeline.errors import WarehouseError
from pipeline.store.location import Warehouse

LOCK = ".lock"
# Held while sessions.duckdb is rebuilt, by ingests and readers alike: whoever rebuilds it
# reads the latest version inside, so the last rebuild is of the latest version.
DATABASE_LOCK = ".database.lock"


@contextmanager
def held(
    wh: Warehouse, *, wait: bool = False, name: str = LOCK, doing: str = "an ingest"
) -> Iterator[None]:
    """Hold the local warehouse's lock. The OS releases it when the process dies, so a crashed
    ingest never leaves it stuck. An S3 warehouse has no lock: two writers both prepare, and
    the first to commit wins; the other's commit fails (see `tables.commit`).

    `doing`: what holds it, in words (`an ingest`, `sessions vacuum`): written into the lock
    file, so that a command refused names what it waits for."""
    if wh.local is None:
        yield
        return
    try:
        handle = (wh.local / name).open("a+")
    except OSError as exc:
        raise WarehouseError(f"cannot open the warehouse {wh}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(
                f"{_holder(handle)} is running on {wh}; run again when it has finished"
            ) from None
        if name == LOCK:  # (the views' lock is waited for: it refuses no one)
            _name_holder(handle, doing)
        yield


def _name_holder(handle: IO[str], doing: str) -> None:
    # Best effort: a lock file that cannot be written still locks.
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.write(f"{doing} (pid {os.getpid()})\n")
        handle.flush()


def _holder(handle: IO[str]) -> str:
    """What holds the lock, as it wrote it (one printable line), or `another command`."""
    try:
        handle.seek(0)
        text = handle.read(200).split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return "another command"
    # Written by a release that named nothing, or half written, or not by us: not shown.
    if not _HOLDER.fullmatch(text):
        return "another command"
    return f"another command, {text},"


# What `_name_holder` writes.
_HOLDER = re.compile(r"(an ingest|a migration|sessions [a-z]+) \(pid [0-9]+\)")
