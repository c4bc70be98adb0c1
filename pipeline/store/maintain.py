"""Keeping a warehouse lean: vacuum (delete files no version needs) and optimize (compact
small files), each one commit that carries the manifest on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.transaction import CommitProperties

from pipeline.errors import PipelineError, WarehouseError
from pipeline.output import Column
from pipeline.query import Rows
from pipeline.store import database, location, lock, reader, runs, tables
from pipeline.store import migrate as convert
from pipeline.store.location import Warehouse
from pipeline.store.tables import Version

# Files replaced by a commit stay this long by default: a reader of an older version (or a
# time-travel query) still finds them. Delta's own default, and its
# `delta.deletedFileRetentionDuration`.
RETAIN_HOURS = 168
# Optimize aims at files of this size (Delta's usual target).
TARGET_FILE_BYTES = 128 * 1024 * 1024


class RetentionError(PipelineError):
    """A --retain that would take files older versions still read, without --force: a usage
    error (exit 2), refused before the warehouse is opened."""

    exit_code = 2


@dataclass
class MaintenanceReport:
    warehouse: str
    files_deleted: list[str] = field(default_factory=list)
    files_added: int = 0
    files_removed: int = 0
    version: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "warehouse": self.warehouse,
            "files_deleted": len(self.files_deleted),
            "files_added": self.files_added,
            "files_removed": self.files_removed,
            "version": self.version,
        }


def _carry(version: Version) -> CommitProperties:
    # Our commits name the manifest, so that the latest one is found without a history walk.
    metadata = {tables.MANIFEST_KEY: version.manifest_path, tables.RUN_KEY: version.run_id}
    return CommitProperties(custom_metadata={k: v for k, v in metadata.items() if v})


@contextmanager
def _maintaining(
    where: object, dead_run_hours: int, command: str
) -> Iterator[tuple[Warehouse, Version, MaintenanceReport]]:
    """Hold the warehouse for one maintenance command: locked, cleaned of what killed runs
    left (as an ingest does; rejects of runs that never committed, older than
    `dead_run_hours` on object storage, where an ingest may be between its two commits), and
    its views file brought up to date after."""
    wh, _ = reader.version(where)  # type: ignore[arg-type]
    report = MaintenanceReport(str(wh))
    with lock.held(wh, doing=command):
        wh, version = reader.version(wh)
        committed = set(version.runs)
        if wh.local is not None:
            runs.clean(wh, committed)
        if version.rejects is not None:
            runs.drop_rejects(wh, version.rejects, committed, dead_run_hours)
        yield wh, version, report
        latest = tables.at(wh)
        assert latest is not None
        report.version = latest.number
        database.refresh(wh)


def _tables(wh: Warehouse, names: tuple[str, ...]) -> Iterator[tuple[str, DeltaTable]]:
    for name in names:
        table = tables.load(wh, name)
        if table is not None:
            yield name, table


def vacuum(
    where: object, retain_hours: int = RETAIN_HOURS, force: bool = False
) -> MaintenanceReport:
    """Delete the files that no version within `retain_hours` reads, and what runs that never
    committed left behind. Under Delta's retention (7 days) only with `force`: a reader of an
    older version, or a query with --as-of, would then find its files gone."""
    if retain_hours < 0:
        raise RetentionError("--retain takes a number of hours, 0 or more")
    if retain_hours < RETAIN_HOURS and not force:
        raise RetentionError(
            f"--retain {retain_hours} is under the table's retention ({RETAIN_HOURS} hours): "
            "readers of older versions and --as-of queries would lose their files; add --force "
            "if no one reads older versions"
        )
    with _maintaining(where, retain_hours, "sessions vacuum") as (wh, version, report):
        for name, table in _tables(wh, (tables.REJECTS, tables.SESSIONS)):
            with tables.errors(wh, name):
                report.files_deleted += table.vacuum(
                    retention_hours=retain_hours,
                    dry_run=False,
                    enforce_retention_duration=False,
                    # Full: also the files no log entry names (a killed or losing writer's
                    # uploads; on S3 no lock lets an ingest clean them itself). Only those
                    # older than the retention go, so a running ingest's uploads stay.
                    full=True,
                    commit_properties=_carry(version),
                )
    return report


def optimize(where: object) -> MaintenanceReport:
    """Compact each day's small files into few large ones (one commit; readers see the same
    rows before and after; the replaced files stay until vacuum). What killed runs left is
    cleaned first: compaction merges rejects files, and the rows of a run that never
    committed, once in a file of no run's name, could no longer be told apart."""
    with _maintaining(where, RETAIN_HOURS, "sessions optimize") as (wh, version, report):
        for name, table in _tables(wh, (tables.SESSIONS, tables.REJECTS)):
            with tables.errors(wh, name):
                metrics = table.optimize.compact(
                    target_size=TARGET_FILE_BYTES, commit_properties=_carry(version)
                )
            report.files_added += int(metrics.get("numFilesAdded", 0))
            report.files_removed += int(metrics.get("numFilesRemoved", 0))
    return report


def rebuild(where: object) -> Path:
    """Rebuild the local warehouse's sessions.duckdb under the lock; its path."""
    wh, _ = reader.version(where)  # type: ignore[arg-type]
    if wh.local is None:
        raise WarehouseError(
            f"{wh} is on object storage: it has no sessions.duckdb (commands read it through "
            "Arrow; DuckDB clients can use delta_scan where the extension is available)"
        )
    with lock.held(wh, wait=True, name=lock.DATABASE_LOCK):
        database.build(wh, tables.at(wh))
    return database.path(wh)


def migrate(where: object) -> str:
    """Convert a snapshot-layout warehouse into Delta tables; what was done, in words."""
    wh = location.of(where)  # type: ignore[arg-type]
    if wh.local is None or not convert.is_snapshot_layout(wh):
        reader.version(wh)  # not a warehouse at all: its error
        if wh.local is not None:
            with lock.held(wh, doing="a migration"):
                convert.convert(wh)  # tidies what a conversion cut short left, if anything
        return f"{wh} is a Delta Lake warehouse already: nothing to convert"
    convert.refuse_followed_copy(wh.local)
    with lock.held(wh, doing="a migration"):
        converted = convert.convert(wh)
        latest = tables.at(wh)
    database.refresh(wh)
    if not converted:
        return f"{wh} is a Delta Lake warehouse already: nothing to convert"
    sessions = len(latest.session_files()) if latest is not None else 0
    ingests = len(latest.manifest.ingests) if latest is not None else 0
    return (
        f"converted {wh} into Delta Lake tables: {sessions} sessions file(s) and the manifest "
        f"of {ingests} ingest(s) kept"
    )


# The operations of the commits a run makes: an ingest's write, a migration's create.
_RUN_MADE = ("WRITE", "CREATE TABLE")


def history(where: object) -> Rows:
    """The sessions table's versions, newest first, as rows for the output formats."""
    wh, version = reader.version(where)  # type: ignore[arg-type]
    with tables.errors(wh, tables.SESSIONS):
        entries = version.sessions.history()
    rows: dict[str, list[str | None]] = {n: [] for n in ("version", "time", "operation", "run_id")}
    for entry in sorted(entries, key=lambda e: -int(e.get("version", -1))):
        rows["version"].append(str(entry.get("version")))
        moment = datetime.fromtimestamp(int(entry.get("timestamp", 0)) / 1000, UTC)
        rows["time"].append(moment.isoformat(timespec="milliseconds"))
        rows["operation"].append(str(entry.get("operation")))
        # Vacuum and optimize commits carry the manifest (and its run) on, but no ingest made
        # them: the run is shown where it wrote the version, an ingest or the migration.
        run = entry.get(tables.RUN_KEY) if entry.get("operation") in _RUN_MADE else None
        rows["run_id"].append(str(run) if run is not None else None)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in rows.items()})
    kinds = {"version": "number"}
    columns = [Column(name, kinds.get(name, "text")) for name in rows]  # type: ignore[arg-type]
    return Rows(columns, iter(table.to_batches()))
