"""Verify a warehouse: files readable, schema as expected, keys unique, manifest agreeing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from pipeline.store import database, location, reader, relations, tables
from pipeline.store.location import Warehouse
from pipeline.store.tables import StoredFile, Version
from schemas import PARTITION_COLUMN, arrow_schema


@dataclass(frozen=True)
class Problem:
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} -- {self.fix}"


@dataclass
class CheckReport:
    warehouse: str
    sessions: int = 0
    files: int = 0
    rejects: int = 0
    ingests: int = 0
    problems: list[Problem] = field(default_factory=list)

    def to_text(self) -> str:
        if not self.problems:
            return (
                f"OK: {self.warehouse} holds {self.sessions:,} sessions in {self.files} files, "
                f"{self.rejects:,} rejected rows, from {self.ingests} ingest(s)"
            )
        lines = [f"{len(self.problems)} problem(s) in {self.warehouse}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


_REINGEST = (
    "restore the file from a backup or a copy of the warehouse (a version's files stay until "
    "`sessions vacuum`; `sessions history` lists the versions), then run the check again"
)


def check(root: Path | str) -> CheckReport:
    """Everything that can be wrong with the warehouse's latest version, and how to repair it.

    It reads one version of the tables: the files of a version stay until `sessions vacuum`
    removes them, so an ingest that commits meanwhile changes nothing the check reads."""
    wh, version = reader.version(root)
    database.refresh(wh, version)
    return check_version(wh, version)


def check_version(wh: Warehouse, version: Version) -> CheckReport:
    """What is wrong with one version of the warehouse `wh`."""
    report = CheckReport(str(wh))
    expected = [(f.name, f.type) for f in arrow_schema()]
    files = version.session_files()
    fs, _ = wh.filesystem()
    readable = []
    for stored in files:
        try:
            opened = pq.ParquetFile(location.fs_path(stored.location), filesystem=fs)
            schema = opened.schema_arrow
            opened.read()  # every page, not only the footer
        except Exception as exc:  # any failure to read is the finding
            report.problems.append(
                Problem(f"{stored.location}: cannot be read ({location.describe(exc)})", _REINGEST)
            )
            continue
        if [(f.name, f.type) for f in schema] != expected:
            report.problems.append(
                Problem(f"{stored.location}: its columns are not the session schema", _REINGEST)
            )
            continue
        if _resized(fs, stored, report):
            continue
        readable.append(stored)
    for stored in version.reject_files():
        _resized(fs, stored, report)
    report.files = len(files)
    report.ingests = len(version.manifest.ingests)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        if readable:
            source = relations.stored(con, version, files=readable)
            _check_keys(con, source, report)
            _check_identities(con, source, version, report)
        (report.rejects,) = con.sql(
            f"SELECT count(*) FROM {relations.rejects_source(con, version)}"
        ).fetchall()[0]
    except (duckdb.Error, OSError) as exc:
        report.problems.append(
            Problem(f"{wh}: cannot be read ({location.describe(exc)})", _REINGEST)
        )
    finally:
        con.close()
    if wh.local is not None:
        _check_database(wh, version, report)
    return report


def _resized(fs: Any, stored: StoredFile, report: CheckReport) -> bool:
    """Whether `stored` is not the size its commit says, which `report` then says: a file
    rewritten in place (fewer rows, another writer) may read, but is not the one committed,
    and Delta readers, which trust the commit's size, fail on it."""
    size = fs.get_file_info(location.fs_path(stored.location)).size
    if size == stored.size:
        return False
    report.problems.append(
        Problem(
            f"{stored.location}: {size:,} bytes, where its commit says {stored.size:,}", _REINGEST
        )
    )
    return True


def _check_keys(con: duckdb.DuckDBPyConnection, source: str, report: CheckReport) -> None:
    """Sessions stored twice, or under a date that is not theirs."""
    (report.sessions,) = con.sql(f"SELECT count(*) FROM {source}").fetchall()[0]
    duplicates = con.sql(
        f"SELECT session_key, count(*), "
        f"list_sort(list(DISTINCT CAST({PARTITION_COLUMN} AS VARCHAR))) "
        f"FROM {source} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 5"
    ).fetchall()
    for key, count, where in duplicates:
        report.problems.append(
            Problem(
                f"session_key {key!r} is stored {count} times, on {', '.join(where)}",
                _REINGEST,
            )
        )
    misplaced = con.sql(
        f"SELECT count(*), list_sort(list(DISTINCT CAST({PARTITION_COLUMN} AS VARCHAR))) "
        f"FROM {source} WHERE CAST(timestamp AS DATE) <> {PARTITION_COLUMN}"
    ).fetchall()[0]
    if misplaced[0]:
        report.problems.append(
            Problem(
                f"{misplaced[0]} session(s) stored under another date, on "
                f"{', '.join(misplaced[1])}",
                _REINGEST,
            )
        )


def _check_identities(
    con: duckdb.DuckDBPyConnection, source: str, version: Version, report: CheckReport
) -> None:
    mode = version.manifest.pii_mode
    if mode not in ("pseudonymise", "drop"):
        return
    raw = con.sql(
        f"SELECT count(*) FROM {source} WHERE source IS NOT NULL"
        + (" AND NOT starts_with(source, 'pii:')" if mode == "pseudonymise" else "")
    ).fetchall()[0][0]
    if raw:
        report.problems.append(
            Problem(
                f"{raw} session(s) hold a raw caller identity, but the manifest says '{mode}'",
                "re-ingest their exports with --force",
            )
        )


def _check_database(wh: Warehouse, version: Version, report: CheckReport) -> None:
    """The warehouse's database reads this version's files, and counts the sessions they hold."""
    fix = "run `sessions rebuild` (or any ingest): it rebuilds the database"
    path = database.path(wh)
    if not database.current(wh, version):
        latest = tables.at(wh)
        if latest is None or latest.number != version.number:
            return  # an ingest committed since: it rebuilds the database
        report.problems.append(
            Problem(
                f"{path} does not read this warehouse's latest version where it is now "
                "(it could not be rebuilt: an ingest runs, or the folder is read-only)",
                fix,
            )
        )
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            (count,) = con.sql("SELECT count(*) FROM sessions").fetchall()[0]
        finally:
            con.close()
    except duckdb.Error as exc:
        latest = tables.at(wh)
        if latest is not None and latest.number != version.number:
            return  # an ingest committed as the check read: its guards refuse, as they must
        report.problems.append(Problem(f"{path}: {location.describe(exc)}", fix))
        return
    latest = tables.at(wh)
    if latest is not None and latest.number != version.number:
        return  # an ingest committed as the check read, and rebuilt the database for it
    if count != report.sessions and not report.problems:
        report.problems.append(
            Problem(f"the views count {count} sessions, the files {report.sessions}", fix)
        )
