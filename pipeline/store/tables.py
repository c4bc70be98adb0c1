"""The two Delta tables, their versions, and the one kind of commit an ingest makes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction

from pipeline import manifest
from pipeline.errors import InputError, WarehouseError
from pipeline.manifest import Manifest
from pipeline.store import location
from pipeline.store.location import Warehouse
from schemas import PARTITION_COLUMN, arrow_schema

SESSIONS, REJECTS, MANIFESTS = "sessions", "rejects", "manifests"
# Keys of our commits' metadata: the run that made the commit, and the manifest as of it.
RUN_KEY, MANIFEST_KEY = "sessions.run_id", "sessions.manifest"

_REASON = pa.struct([("field", pa.string()), ("rule", pa.string()), ("value", pa.string())])
REJECT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("source_file", pa.string()),
    ("line", pa.int64()),
    ("element", pa.int64()),
    ("item", pa.int64()),
    ("position", pa.string()),
    ("record", pa.string()),
    ("reasons", pa.list_(_REASON)),
    ("reason", pa.string()),
    ("run_id", pa.string()),
)


def sessions_schema() -> pa.Schema:
    """The sessions table: the stored fields, and the partition (not in the files)."""
    return arrow_schema().append(pa.field(PARTITION_COLUMN, pa.date32()))


def rejects_schema() -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in REJECT_COLUMNS])


def schema_for_delta(schema: pa.Schema) -> DeltaSchema:
    return DeltaSchema.from_arrow(schema)


# Table properties: the log keeps 30 days of versions for time travel, and files replaced
# stay a week before `sessions vacuum` may delete them (readers of older versions need them).
PROPERTIES = {
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}


def load(wh: Warehouse, name: str, version: int | None = None) -> DeltaTable | None:
    """The table `name` of the warehouse (at `version`), or None where it is not one yet."""
    try:
        return DeltaTable(wh.table(name), version=version)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise _error(wh, name, exc) from None


def ensure(wh: Warehouse) -> tuple[DeltaTable, DeltaTable]:
    """Both tables, created empty (version 0) where missing."""
    found = []
    for name, schema, partitions in (
        (SESSIONS, sessions_schema(), [PARTITION_COLUMN]),
        (REJECTS, rejects_schema(), None),
    ):
        table = load(wh, name)
        if table is None:
            try:
                table = DeltaTable.create(
                    wh.table(name),
                    schema,
                    mode="ignore",
                    partition_by=partitions,
                    configuration=PROPERTIES,
                )
            except (DeltaError, OSError) as exc:
                # Two first ingests on S3 (no lock) both create it: one commit makes version
                # 0, and the other uses that table.
                table = load(wh, name)
                if table is None:
                    raise _error(wh, name, exc) from None
        found.append(table)
    return found[0], found[1]


@dataclass(frozen=True)
class StoredFile:
    """A data file of a table version: its path in the table, where it is, its size, day."""

    path: str
    location: str
    size: int
    day: date | None


@dataclass
class Version:
    """One version of the warehouse, as readers see it: the sessions table at a version, the
    manifest the commit names, and the rejects table (whose rows count where their run is
    one the manifest lists)."""

    wh: Warehouse
    sessions: DeltaTable
    rejects: DeltaTable | None
    manifest_path: str | None
    run_id: str | None
    manifest: Manifest = field(default_factory=Manifest)

    @property
    def runs(self) -> list[str]:
        """The runs committed as of this version."""
        return manifest.runs(self.manifest)

    @property
    def number(self) -> int:
        return self.sessions.version()

    def session_files(self) -> list[StoredFile]:
        return files_of(self.sessions, self.wh.table(SESSIONS))

    def reject_files(self) -> list[StoredFile]:
        return files_of(self.rejects, self.wh.table(REJECTS)) if self.rejects is not None else []


def files_of(table: DeltaTable, root: str) -> list[StoredFile]:
    """The data files of `table` (as loaded), found below `root`, the table's place as the
    warehouse names it. (deltalake gives its own paths percent-encoded: `a%20b` for `a b`.)"""
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = actions["path"].to_pylist()
    sizes = actions["size_bytes"].to_pylist()
    column = f"partition.{PARTITION_COLUMN}"
    days = actions[column].to_pylist() if column in actions.column_names else [None] * len(paths)
    found = [
        StoredFile(path, f"{root}/{unquote(path)}", size, day)
        for path, size, day in zip(paths, sizes, days, strict=True)
    ]
    return sorted(found, key=lambda f: f.path)


def committed(table: DeltaTable) -> tuple[str | None, str | None]:
    """(manifest, run_id) of the newest commit up to the table's version that names one."""
    version = table.version()
    # The history of a table loaded at an older version numbers its entries down from that
    # version, whatever they are (deltalake 1.6): read it from the latest version instead.
    try:
        latest = DeltaTable(table.table_uri)
    except (DeltaError, OSError) as exc:
        raise WarehouseError(
            f"cannot read the history of {table.table_uri}: {_one_line(exc)}"
        ) from None
    for limit in (16 + latest.version() - version, None):
        try:
            history = latest.history(limit)
        except (DeltaError, OSError) as exc:
            raise WarehouseError(
                f"cannot read the history of {table.table_uri}: {_one_line(exc)}"
            ) from None
        for entry in sorted(history, key=lambda e: -int(e.get("version", -1))):
            if int(entry.get("version", -1)) > version:
                continue
            if MANIFEST_KEY in entry:
                return str(entry[MANIFEST_KEY]), entry.get(RUN_KEY)
        if limit is not None and len(history) < limit:
            break
    return None, None


def parse_as_of(text: str) -> int | datetime:
    """`--as-of`: a table version (a whole number), or an ISO 8601 time (UTC without offset)."""
    if re.fullmatch(r"[0-9]{1,18}", text.strip()):  # ASCII digits (not "²"), within int64
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        # The option's text is wrong, whatever the warehouse holds: a usage error (exit 2).
        raise InputError(
            f"--as-of {text!r}",
            "is neither a version number nor an ISO 8601 time",
            "e.g. 12, 2026-11-23 or 2026-11-23T09:00:00+01:00; see `sessions history`",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def at(wh: Warehouse, as_of: int | datetime | None = None) -> Version | None:
    """The warehouse's version `as_of` (the latest by default); None before any ingest."""
    sessions = load(wh, SESSIONS)
    if sessions is None:
        return None
    if as_of is not None:
        latest = sessions.version()
        try:
            sessions.load_as_version(as_of)
        except (DeltaError, OSError, ValueError):
            shown = as_of if isinstance(as_of, int) else as_of.isoformat()
            raise WarehouseError(
                f"--as-of {shown}: no such version of {wh} (it has versions up to {latest}; "
                "see `sessions history`; versions older than the log keeps, 30 days, are gone)"
            ) from None
    relative, run_id = committed(sessions)
    if relative is None:
        return None
    found = manifest.read(wh, relative)
    return Version(wh, sessions, load(wh, REJECTS), relative, run_id, found)


def conflict(wh: Warehouse, detail: str) -> WarehouseError:
    """The error of a run that lost a race with another writer: it committed nothing."""
    return WarehouseError(
        f"another writer committed to {wh} meanwhile, so nothing of this run was committed "
        f"({detail}); run it again"
    )


@contextmanager
def errors(wh: Warehouse, name: str) -> Iterator[None]:
    """deltalake's failures as WarehouseError."""
    try:
        yield
    except CommitFailedError as exc:
        raise conflict(wh, _one_line(exc)) from None
    except (DeltaError, OSError) as exc:
        raise _error(wh, name, exc) from None


def commit(
    wh: Warehouse,
    table: DeltaTable,
    name: str,
    adds: list[AddAction],
    removes: list[RemoveAction],
    metadata: dict[str, Any],
    *,
    exclusive: bool,
) -> None:
    """One commit of `adds` and `removes` to `table` (as loaded: its version is the one the
    work was read from). `exclusive`: fail (WarehouseError, exit 3) if anyone committed since,
    instead of committing on top; the sessions commit is exclusive, so that two writers
    never both add the same new session."""
    schema = sessions_schema() if name == SESSIONS else rejects_schema()
    partitions = [PARTITION_COLUMN] if name == SESSIONS else None
    properties = CommitProperties(
        custom_metadata=metadata, max_commit_retries=0 if exclusive else None
    )
    with errors(wh, name):
        table.create_write_transaction(
            [*adds, *removes],
            "append",
            schema,
            partition_by=partitions,
            commit_properties=properties,
        )


def add_action(path: str, size: int, rows: int, day: str | None, modified_ms: int) -> AddAction:
    partition = {PARTITION_COLUMN: day} if day is not None else {}
    return AddAction(path, size, partition, modified_ms, True, json.dumps({"numRecords": rows}))


def remove_action(stored: StoredFile) -> RemoveAction:
    partition: dict[str, str | None] = (
        {PARTITION_COLUMN: stored.day.isoformat()} if stored.day is not None else {}
    )
    now = int(datetime.now(UTC).timestamp() * 1000)
    return RemoveAction(stored.path, True, now, stored.size, partition)


def _error(wh: Warehouse, name: str, exc: BaseException) -> WarehouseError:
    return WarehouseError(f"cannot use the {name} table of {wh}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    return location.describe(exc)
