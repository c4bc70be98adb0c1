"""One ingest at a time on a local warehouse; on object storage, Delta's commit decides."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.errors import WarehouseError
from pipeline.store.location import Warehouse

LOCK = ".lock"
# Held while sessions.duckdb is rebuilt, by ingests and readers alike: whoever rebuilds it
# reads the latest version inside, so the last rebuild is of the latest version.
DATABASE_LOCK = ".database.lock"


@contextmanager
def held(wh: Warehouse, *, wait: bool = False, name: str = LOCK) -> Iterator[None]:
    """Hold the local warehouse's lock. The OS releases it when the process dies, so a crashed
    ingest never leaves it stuck. An S3 warehouse has no lock: two writers both prepare, and
    the first to commit wins; the other's commit fails (see `tables.commit`)."""
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
                f"another ingest is running on {wh}; run again when it has finished"
            ) from None
        yield
