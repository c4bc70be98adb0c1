"""The version a reading command reads, or an error that says what to do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pipeline.errors import WarehouseError
from pipeline.store import location, migrate, tables
from pipeline.store.location import Warehouse
from pipeline.store.tables import Version


def version(
    where: Path | str | Warehouse, as_of: int | datetime | None = None
) -> tuple[Warehouse, Version]:
    """The warehouse, and its version as of `as_of` (the latest by default). Reads only."""
    wh = location.of(where)
    ingest_first = f"run `sessions ingest EXPORTS --warehouse {wh}` first"
    if wh.local is not None and not wh.local.exists():
        raise WarehouseError(f"{wh} does not exist: {ingest_first}")
    try:
        marked = location.marker_version(wh)
        old = migrate.is_snapshot_layout(wh)
    except OSError as exc:
        raise WarehouseError(f"cannot read the warehouse {wh}: {exc.strerror or exc}") from None
    if old:
        raise WarehouseError(
            f"{wh} is a warehouse of the layout before Delta Lake: run "
            f"`sessions migrate --warehouse {wh}` (or an ingest) to convert it, losing nothing"
        )
    if marked is None:
        if wh.local is not None and any(wh.local.iterdir()):
            raise WarehouseError(f"{wh} is not a warehouse (it has no {location.MARKER})")
        raise WarehouseError(f"{wh} is not a warehouse yet: {ingest_first}")
    found = tables.at(wh, as_of)
    if found is None and as_of is not None:
        shown = as_of if isinstance(as_of, int) else as_of.isoformat()
        raise WarehouseError(f"{wh} held no ingest yet as of {shown} (see `sessions history`)")
    if found is None:
        raise WarehouseError(f"{wh} holds no ingest yet: {ingest_first}")
    return wh, found
