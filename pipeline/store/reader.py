"""The version a reading command reads, or an error that says what to do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from pipeline.errors import WarehouseError
from pipeline.store import location, migrate, tables
from pipeline.store.location import Warehouse
from pipeline.store.tables import StoredFile, Version


def version(
    where: Path | str | Warehouse, as_of: int | datetime | None = None
) -> tuple[Warehouse, Version]:
    """The warehouse, and its version as of `as_of` (the latest by default). Reads only."""
    wh = location.of(where)
    ingest_first = f"run `sessions ingest EXPORTS --warehouse {wh}` first"
    if wh.local is not None and not wh.local.exists():
        raise WarehouseError(f"{wh} does not exist: {ingest_first}")
    if wh.local is not None and not wh.local.is_dir():
        raise WarehouseError(f"{wh} is a file, not a warehouse folder")
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
    shown = _shown(as_of)
    number = _version_at(wh, as_of) if isinstance(as_of, datetime) else as_of
    found = tables.at(wh, number) if number is not None or as_of is None else None
    if found is None and as_of is not None:
        raise WarehouseError(f"{wh} held no ingest yet as of {shown} (see `sessions history`)")
    if found is None:
        raise WarehouseError(f"{wh} holds no ingest yet: {ingest_first}")
    if as_of is not None:
        _readable(wh, found, shown)
    return wh, found


def _shown(as_of: int | datetime | None) -> str:
    return as_of.isoformat() if isinstance(as_of, datetime) else str(as_of)


def _version_at(wh: Warehouse, moment: datetime) -> int | None:
    """The newest version committed at or before `moment`; None before the first.

    By the time each commit records (the one `sessions history` shows), not by deltalake's
    own `load_as_version(datetime)`, which goes by the log files' modification times: those
    differ from the recorded ones by a millisecond or so (a time copied from `history` would
    read the version before), and a `cp -r` of the warehouse sets them all to the copy's time.
    """
    try:
        entries = DeltaTable(wh.table(tables.SESSIONS)).history()
    except (DeltaError, OSError) as exc:
        raise WarehouseError(f"cannot read the history of {wh}: {location.describe(exc)}") from None
    limit = int(moment.timestamp() * 1000)
    versions = [
        (int(e["version"]), int(e["timestamp"]))
        for e in entries
        if "version" in e and "timestamp" in e
    ]
    before = [number for number, stamp in versions if stamp <= limit]
    if before:
        return max(before)
    if versions and min(number for number, _ in versions) > 0:
        oldest = min(versions)
        raise WarehouseError(
            f"--as-of {_shown(moment)}: {wh} keeps versions from {oldest[0]} on "
            "(its log keeps 30 days); see `sessions history`"
        )
    return None


def _readable(wh: Warehouse, found: Version, shown: str) -> None:
    """An older version whose files `sessions vacuum` deleted cannot be read: say so, rather
    than let a query fail on the first missing file."""
    stored = [*found.session_files(), *found.reject_files()]
    missing = _missing(wh, stored)
    if missing:
        raise WarehouseError(
            f"--as-of {shown}: version {found.number} of {wh} can no longer be read: "
            f"`sessions vacuum` deleted {len(missing)} of its {len(stored)} file(s) "
            f"(e.g. {missing[0]}): read a later version (`sessions history` lists them)"
        )


def _missing(wh: Warehouse, stored: list[StoredFile]) -> list[str]:
    if not stored:
        return []
    if wh.local is not None:
        return [f.path for f in stored if not Path(f.location).exists()]
    fs, _ = wh.filesystem()
    try:
        infos = fs.get_file_info([location.fs_path(f.location) for f in stored])
    except OSError as exc:
        raise WarehouseError(f"cannot reach {wh}: {location.describe(exc)}") from None
    return [
        f.path for f, info in zip(stored, infos, strict=True) if info.type == pafs.FileType.NotFound
    ]
