"""Verify a warehouse: files readable, schema as expected, keys unique, manifest agreeing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from pipeline import manifest, views, warehouse
from pipeline.errors import WarehouseError
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
    "restore the file from an earlier snapshot in .snapshots/ (the same date folder), or "
    "delete it and ingest the exports of that date again with --force"
)


# An ingest that commits during a check removes, at the latest two commits on, the snapshot
# the check reads; a check that finds problems in a snapshot no longer current reads again.
ATTEMPTS = 4


def check(root: Path) -> CheckReport:
    """Everything that can be wrong with the warehouse at `root`, and how to repair it.

    It reads one snapshot, resolved once, never through the warehouse's links (which an
    ingest committing meanwhile switches). Problems found in a snapshot that an ingest has
    replaced since may be the ingest's doing (files removed as the check read them): then
    the check starts again on the new snapshot."""
    for _ in range(ATTEMPTS):
        snapshot = warehouse.readable_snapshot(root)
        report = check_snapshot(root, snapshot)
        if not report.problems or warehouse.readable_snapshot(root) == snapshot:
            return report
    raise WarehouseError(
        f"{root} changed during each of {ATTEMPTS} checks (ingests committed meanwhile): "
        "run the check again when no ingest runs"
    )


def check_snapshot(root: Path, snapshot: Path) -> CheckReport:
    """What is wrong with one snapshot of the warehouse at `root`."""
    report = CheckReport(str(root))
    expected = [(f.name, f.type) for f in arrow_schema()]
    files = sorted((snapshot / "sessions").glob(f"{PARTITION_COLUMN}=*/*.parquet"))
    readable = []
    for path in files:
        try:
            schema = pq.read_schema(path)
            pq.ParquetFile(path).read()  # every page, not only the footer
        except Exception as exc:  # any failure to read is the finding
            report.problems.append(Problem(f"{path}: cannot be read ({exc})", _REINGEST))
            continue
        if [(f.name, f.type) for f in schema] != expected:
            report.problems.append(
                Problem(f"{path}: its columns are not the session schema", _REINGEST)
            )
            continue
        readable.append(path)
    report.files = len(files)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        if readable:
            _check_keys(con, readable, report)
        _check_manifest(snapshot, con, readable, report)
    except (duckdb.Error, OSError) as exc:
        # A file read a moment ago cannot be read now: removed by an ingest, or failing.
        report.problems.append(Problem(f"{snapshot}: cannot be read ({exc})", _REINGEST))
    finally:
        con.close()
    _check_database(root, snapshot, report)
    return report


def _check_keys(con: duckdb.DuckDBPyConnection, readable: list[Path], report: CheckReport) -> None:
    """Sessions stored twice, or under a date that is not theirs."""
    source = warehouse.stored_files(readable)
    (report.sessions,) = con.sql(f"SELECT count(*) FROM {source}").fetchall()[0]
    duplicates = con.sql(
        f"SELECT session_key, count(*), list(DISTINCT filename ORDER BY filename) "
        f"FROM {source} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 5"
    ).fetchall()
    for key, count, where in duplicates:
        report.problems.append(
            Problem(
                f"session_key {key!r} is stored {count} times, in {', '.join(where)}",
                "a file that does not belong in its folder: delete it, or restore the "
                "folder from an earlier snapshot in .snapshots/",
            )
        )
    misplaced = con.sql(
        f"SELECT count(*), list(DISTINCT filename ORDER BY filename) FROM {source} "
        f"WHERE CAST(timestamp AS DATE) <> {warehouse.FOLDER_DATE}"
    ).fetchall()[0]
    if misplaced[0]:
        report.problems.append(
            Problem(
                f"{misplaced[0]} session(s) stored under another date, in "
                f"{', '.join(misplaced[1])}",
                _REINGEST,
            )
        )


def _check_manifest(
    snapshot: Path, con: duckdb.DuckDBPyConnection, files: list[Path], report: CheckReport
) -> None:
    try:
        found = manifest.read(snapshot)
    except WarehouseError as exc:
        report.problems.append(Problem(str(exc), "restore manifest.json from an earlier snapshot"))
        return
    report.ingests = len(found.ingests)
    runs = {run["run_id"] for run in found.ingests}
    for path in sorted((snapshot / "rejects").glob("*.parquet")):
        run_id = path.stem.removeprefix("ingest-")
        if run_id not in runs:
            report.problems.append(
                Problem(f"{path}: no ingest {run_id} in the manifest", "remove the file")
            )
        try:
            report.rejects += pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # any failure to read is the finding
            report.problems.append(
                Problem(
                    f"{path}: cannot be read ({exc})",
                    "restore the file from an earlier snapshot in .snapshots/, or remove it "
                    "(its rejected rows are then lost)",
                )
            )
    if files and found.pii_mode in ("pseudonymise", "drop"):
        raw = con.sql(
            f"SELECT count(*) FROM {warehouse.stored_files(files)} WHERE source IS NOT NULL"
            + (" AND NOT starts_with(source, 'pii:')" if found.pii_mode == "pseudonymise" else "")
        ).fetchall()[0][0]
        if raw:
            report.problems.append(
                Problem(
                    f"{raw} session(s) hold a raw caller identity, but the manifest says "
                    f"'{found.pii_mode}'",
                    "re-ingest their exports with --force",
                )
            )


def _check_database(root: Path, snapshot: Path, report: CheckReport) -> None:
    """The snapshot's own database (not the one the warehouse's link names, which an ingest
    may have switched since) reads this warehouse's files and counts the sessions they hold."""
    fix = "run `sessions rebuild` (or any ingest): it rebuilds the database"
    database = snapshot / views.DATABASE
    if not warehouse.database_reads(snapshot):
        report.problems.append(
            Problem(
                f"{root / views.DATABASE} does not read this warehouse's own files (the "
                "warehouse was moved or copied since it was built)",
                fix,
            )
        )
        return
    try:
        con = duckdb.connect(str(database), read_only=True)
        try:
            (count,) = con.sql("SELECT count(*) FROM sessions").fetchall()[0]
        finally:
            con.close()
    except duckdb.Error as exc:
        report.problems.append(Problem(f"{database}: {exc}", fix))
        return
    if count != report.sessions and not report.problems:
        report.problems.append(
            Problem(f"the views count {count} sessions, the files {report.sessions}", fix)
        )
