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


def check(root: Path) -> CheckReport:
    """Everything that can be wrong with the warehouse at `root`, and how to repair it."""
    report = CheckReport(str(root))
    snapshot = warehouse.readable_snapshot(root)
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
    if readable:
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
    _check_manifest(snapshot, con, readable, report)
    _check_database(root, snapshot, report)
    return report


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
        report.rejects += pq.ParquetFile(path).metadata.num_rows
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
    fix = "run `sessions rebuild` (or any ingest): it rebuilds the database"
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
        con = duckdb.connect(str(root / views.DATABASE), read_only=True)
        (count,) = con.sql("SELECT count(*) FROM sessions").fetchall()[0]
        con.close()
    except duckdb.Error as exc:
        report.problems.append(Problem(f"{root / views.DATABASE}: {exc}", fix))
        return
    if count != report.sessions and not report.problems:
        report.problems.append(
            Problem(f"the views count {count} sessions, the files {report.sessions}", fix)
        )
