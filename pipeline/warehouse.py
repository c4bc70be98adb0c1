"""The warehouse on disk: the sessions dataset and the quarantine, and how an ingest commits.

Layout of `<warehouse>/`:

    sessions -> current/sessions     Hive-partitioned Parquet, `date=YYYY-MM-DD/*.parquet`
    rejects  -> current/rejects      the quarantine, one Parquet file per ingest
    sessions.duckdb -> current/sessions.duckdb   DuckDB views over the snapshot's files
    current  -> .snapshots/<run>     the committed snapshot
    .snapshots/<run>/                one snapshot per ingest; unchanged files are hard links
    .staging/<run>/                  a running ingest's work; never read by anyone else

An ingest builds a whole new snapshot beside the current one, then swaps the `current` link
with one `rename`: a reader sees every file of an ingest or none, and a crash before the swap
leaves the warehouse as it was.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline import memory, views
from pipeline.errors import WarehouseError
from schemas import FIELD_NAMES, PARTITION_COLUMN, SESSION_FIELDS, STORED_FIELDS

SNAPSHOTS, STAGING, CURRENT = ".snapshots", ".staging", "current"
# DuckDB's memory budget unless the ingest says otherwise (why this figure: pipeline/memory.py).
MEMORY_LIMIT = memory.MEMORY_LIMIT
# A partition that has this many files is rewritten as one file when an ingest adds to it.
MAX_FILES = 8
# Days one partitioned write covers: with every day of a long export open at once, the write
# runs short of memory and spills (42 days of 1M sessions: 2.6 s; 16 at a time: 1.9 s).
DAYS_PER_WRITE = 16


@dataclass(frozen=True)
class Run:
    """One ingest's identity and scratch space."""

    warehouse: Path
    run_id: str
    started: datetime

    @property
    def staging(self) -> Path:
        return self.warehouse / STAGING / self.run_id

    @property
    def accepted(self) -> Path:
        return self.staging / "accepted"

    @property
    def rejected(self) -> Path:
        return self.staging / "rejected"

    @property
    def snapshot(self) -> Path:
        return self.warehouse / SNAPSHOTS / self.run_id


@dataclass(frozen=True)
class MergeResult:
    sessions_new: int
    sessions_updated: int
    sessions_unchanged: int
    partitions_written: int


@contextmanager
def locked(warehouse: Path) -> Iterator[None]:
    """Hold the warehouse's ingest lock. The OS releases it when the process dies, so a
    crashed ingest never leaves it stuck."""
    try:
        warehouse.mkdir(parents=True, exist_ok=True)
        handle = (warehouse / ".lock").open("a+")
    except OSError as exc:
        raise WarehouseError(f"cannot open the warehouse {warehouse}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(
                f"another ingest is running on {warehouse}; run again when it has finished"
            ) from None
        yield


def start_run(warehouse: Path) -> Run:
    """Prepare `warehouse` (creating it if new) and a staging folder for one ingest."""
    now = datetime.now(UTC)
    run = Run(warehouse, now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8], now)
    try:
        warehouse.mkdir(parents=True, exist_ok=True)
        _clean_leftovers(warehouse)
        run.accepted.mkdir(parents=True)
        run.rejected.mkdir(parents=True)
        for name in ("sessions", "rejects", views.DATABASE):
            link = warehouse / name
            if not link.is_symlink():
                if name == views.DATABASE:
                    link.unlink(missing_ok=True)  # a database built before it was linked
                elif link.exists():
                    raise WarehouseError(f"{link} exists and is not this warehouse's link")
                link.symlink_to(Path(CURRENT) / name)
    except OSError as exc:
        raise WarehouseError(f"cannot prepare the warehouse {warehouse}: {exc}") from None
    return run


def abandon(run: Run) -> None:
    """Remove what a failed or refused ingest wrote; the warehouse stays as it was. A run
    stopped after its commit keeps its snapshot, which is the current one by then."""
    shutil.rmtree(run.staging, ignore_errors=True)
    if not committed(run):
        shutil.rmtree(run.snapshot, ignore_errors=True)


def committed(run: Run) -> bool:
    """Whether the run's snapshot is the current one: its commit has happened."""
    return current_snapshot(run.warehouse) == run.snapshot.resolve()


def connect(run: Run, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for the merge: UTC, and spilling into the run's staging folder.

    `memory_limit` is DuckDB's budget (`memory.parse` spells it); past it DuckDB spills.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Inside the run's staging folder: removed with the run, whatever happens to it.
    con.execute(f"SET temp_directory = {views.sql_path(run.staging / 'spill')}")
    con.execute("SET preserve_insertion_order = false")
    # Bounded memory whatever the size of the ingest: DuckDB spills past this. (The spill
    # itself is bounded by DuckDB's default max_temp_directory_size, 90% of the free disk.)
    con.execute(f"SET memory_limit = '{memory.parse(memory_limit)}'")
    # A partitioned write buffers this many rows per thread before it writes them out, and
    # that buffer cannot spill: at DuckDB's default (524,288 rows) 5M sessions ran out of
    # memory under the cap.
    con.execute("SET partitioned_write_flush_threshold = 131072")
    return con


def _content_hash_sql() -> str:
    # Stable across versions (md5 of text), unlike an engine's internal row hash.
    parts = []
    for name in (*FIELD_NAMES, "extra_fields"):
        value = f'epoch_us("{name}")' if name == "timestamp" else f'"{name}"'
        parts.append(f"coalesce(CAST({value} AS VARCHAR), chr(0))")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


# The rule the `sessions` view states for local times, spelled as it spells it: the agent's
# timezone where it is an IANA name DuckDB knows, else UTC.
_LOCAL_DATE = """CAST(timezone(
    CASE WHEN agent_timezone IN (SELECT name FROM pg_timezone_names()) THEN agent_timezone
         ELSE 'UTC' END,
    "timestamp") AS DATE)"""


def merge(run: Run, con: duckdb.DuckDBPyConnection) -> MergeResult:
    """Write the new snapshot's changed partitions from the staged accepted rows.

    Within the run the latest delivery of a session wins (later file, then later record);
    over the warehouse, a delivery replaces the stored session unless its content is equal.
    """
    stored = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    # Files named one by one, never a glob: the warehouse's own path may hold `[` or `*`.
    accepted = sorted(run.accepted.glob("*.parquet"))
    staged = (
        f"read_parquet({views.sql_paths(accepted)})" if accepted else views.empty_relation(_STAGED)
    )
    con.execute(f"""
        CREATE TEMP TABLE incoming AS
        SELECT {stored}, CAST("timestamp" AS DATE) AS "{PARTITION_COLUMN}",
            _file_seq, _element, _item
        FROM (
            SELECT *, coalesce(session_id, 'content:' || content_hash) AS session_key
            FROM (
                SELECT *, {_content_hash_sql()} AS content_hash, {_LOCAL_DATE} AS local_date
                FROM {staged}
            )
        )
    """)
    # Most runs deliver each session once; the window that picks the latest delivery is the
    # costliest step of a merge, so it runs only over the sessions delivered more than once.
    repeated = con.execute("SELECT count(*) - count(DISTINCT session_key) FROM incoming")
    if repeated.fetchall()[0][0]:
        con.execute("""
            DELETE FROM incoming WHERE rowid IN (
                SELECT rowid FROM incoming
                WHERE session_key IN (
                    SELECT session_key FROM incoming GROUP BY session_key HAVING count(*) > 1)
                QUALIFY row_number() OVER (
                    PARTITION BY session_key
                    ORDER BY _file_seq DESC, _element DESC, _item DESC NULLS LAST) > 1)
        """)
    current = _current_files(run.warehouse)
    existing = (
        f"""SELECT session_key, content_hash, "{PARTITION_COLUMN}" AS old_date
            FROM read_parquet({views.sql_paths(current)}, hive_partitioning = true)"""
        if current
        else "SELECT NULL::VARCHAR AS session_key, NULL::VARCHAR AS content_hash, "
        "NULL::DATE AS old_date LIMIT 0"
    )
    con.execute(f"""
        CREATE TEMP TABLE compared AS
        SELECT i.session_key, i."{PARTITION_COLUMN}" AS new_date, e.old_date,
               CASE WHEN e.session_key IS NULL THEN 'new'
                    WHEN e.content_hash = i.content_hash THEN 'unchanged'
                    ELSE 'updated' END AS outcome
        FROM incoming i
        LEFT JOIN ({existing}) e ON e.session_key = i.session_key
    """)
    counts = dict(con.execute("SELECT outcome, count(*) FROM compared GROUP BY ALL").fetchall())
    # Every day the run changes, and whether it loses a row there (an updated session's old
    # version) or only gains some.
    changed_days = {
        str(day): loses
        for day, loses in con.execute("""
            SELECT d, bool_or(loses) FROM (
                SELECT new_date AS d, false AS loses FROM compared WHERE outcome <> 'unchanged'
                UNION ALL SELECT old_date, true FROM compared WHERE outcome = 'updated')
            GROUP BY d
        """).fetchall()
    }
    # A partition that loses rows is rewritten; one that only gains rows gets one more file,
    # so that the cost follows the new data, not the warehouse. A partition with too many
    # files is rewritten as one to keep reads fast.
    files_in: dict[str, list[Path]] = {}
    for path in current:
        files_in.setdefault(_partition_of(path), []).append(path)
    rewritten = {
        day
        for day, loses in changed_days.items()
        if loses or len(files_in.get(day, [])) >= MAX_FILES
    }
    kept_from = [p for d in sorted(rewritten) for p in files_in.get(d, [])]
    kept = (
        f"""SELECT {stored}, "{PARTITION_COLUMN}"
            FROM read_parquet({views.sql_paths(kept_from)}, hive_partitioning = true)
            WHERE session_key NOT IN (
                SELECT session_key FROM compared WHERE outcome = 'updated')"""
        if kept_from
        else None
    )
    changed = f'SELECT {stored}, "{PARTITION_COLUMN}" FROM incoming'
    if counts.get("unchanged"):
        changed += """ WHERE session_key IN (
            SELECT session_key FROM compared WHERE outcome <> 'unchanged')"""
    written = run.staging / "partitions"
    written.mkdir()
    # Each write takes only its own days' rows (see _write_partitions).
    if rewritten:
        union = f"{kept} UNION ALL {changed}" if kept else changed
        _write_partitions(con, union, rewritten, written / "rewritten", run)
    if len(rewritten) < len(changed_days):
        _write_partitions(con, changed, set(changed_days) - rewritten, written / "added", run)
    _build_snapshot(run, current, rewritten, written)
    return MergeResult(
        sessions_new=counts.get("new", 0),
        sessions_updated=counts.get("updated", 0),
        sessions_unchanged=counts.get("unchanged", 0),
        partitions_written=len(changed_days),
    )


# What ingest stages: the session fields, lineage, and each row's place among the deliveries.
_STAGED = (
    *((f.name, f.duckdb_type) for f in SESSION_FIELDS),
    ("extra_fields", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("ingested_at", "TIMESTAMPTZ"),
    ("_file_seq", "BIGINT"),
    ("_element", "BIGINT"),
    ("_item", "BIGINT"),
)


def _write_partitions(
    con: duckdb.DuckDBPyConnection, rows: str, days: set[str], folder: Path, run: Run
) -> None:
    """`rows` (of `days` only) as one folder per day under `folder`, a few days per write."""
    folder.mkdir()
    ordered = sorted(days)
    for start in range(0, len(ordered), DAYS_PER_WRITE):
        group = set(ordered[start : start + DAYS_PER_WRITE])
        written = folder.with_name(f"{folder.name}-{start}")
        con.execute(f"""
            COPY (SELECT * FROM ({rows})
                  WHERE CAST("{PARTITION_COLUMN}" AS VARCHAR) IN ({_sql_list(group)}))
            TO {views.sql_path(written)}
            (FORMAT parquet, PARTITION_BY ("{PARTITION_COLUMN}"), COMPRESSION zstd,
             FILENAME_PATTERN 'part-{run.run_id}-{{i}}', WRITE_PARTITION_COLUMNS false)
        """)
        if written.exists():  # no folder where the days have no rows left
            for partition in written.iterdir():
                os.replace(partition, folder / partition.name)
            written.rmdir()


def _sql_list(values: set[str]) -> str:
    # Dates only (YYYY-MM-DD, from DuckDB itself): nothing to escape.
    return ", ".join(f"'{v}'" for v in sorted(values))


def _partition_of(path: Path) -> str:
    return path.parent.name.split("=", 1)[1]


def current_snapshot(warehouse: Path) -> Path | None:
    link = warehouse / CURRENT
    return link.resolve() if link.is_symlink() else None


def _current_files(warehouse: Path) -> list[Path]:
    snapshot = current_snapshot(warehouse)
    if snapshot is None:
        return []
    return sorted((snapshot / "sessions").glob(f"{PARTITION_COLUMN}=*/*.parquet"))


def _build_snapshot(run: Run, current: list[Path], rewritten: set[str], written: Path) -> None:
    """The new snapshot: hard links to every file it keeps, the partitions rewritten, and the
    files added to the others."""
    sessions = run.snapshot / "sessions"
    sessions.mkdir(parents=True)
    (run.snapshot / "rejects").mkdir()
    for path in current:
        if _partition_of(path) not in rewritten:
            target = sessions / path.parent.name / path.name
            target.parent.mkdir(exist_ok=True)
            os.link(path, target)
    if (written / "rewritten").exists():
        for partition in (written / "rewritten").iterdir():
            os.replace(partition, sessions / partition.name)
    if (written / "added").exists():
        for partition in (written / "added").iterdir():
            (sessions / partition.name).mkdir(exist_ok=True)
            for path in partition.iterdir():
                os.replace(path, sessions / partition.name / path.name)
    previous = current_snapshot(run.warehouse)
    if previous is not None:
        for path in (previous / "rejects").glob("*.parquet"):
            os.link(path, run.snapshot / "rejects" / path.name)


def add_rejects(run: Run, con: duckdb.DuckDBPyConnection) -> None:
    """Put the run's quarantined rows into the new snapshot as one Parquet file."""
    rejected = sorted(run.rejected.glob("*.parquet"))
    if not rejected:
        return
    target = run.snapshot / "rejects" / f"ingest-{run.run_id}.parquet"
    con.execute(f"""
        COPY (SELECT * FROM read_parquet({views.sql_paths(rejected)})
              ORDER BY _file_seq, element, item NULLS FIRST)
        TO {views.sql_path(target)} (FORMAT parquet, COMPRESSION zstd)
    """)


def commit(run: Run) -> None:
    """Make the run's snapshot the current one, in one atomic rename."""
    link = run.warehouse / f".{CURRENT}.{run.run_id}"
    link.symlink_to(Path(SNAPSHOTS) / run.run_id)
    os.replace(link, run.warehouse / CURRENT)
    # A write-ahead log left beside the database by a client that opened it for writing and
    # died belongs to the database just replaced; replayed on the new one it would do harm.
    Path(f"{run.warehouse / views.DATABASE}.wal").unlink(missing_ok=True)
    shutil.rmtree(run.staging, ignore_errors=True)


def build_database(snapshot: Path) -> None:
    """Build the snapshot's `sessions.duckdb`: views over exactly the snapshot's files."""
    target = snapshot / views.DATABASE
    building = snapshot / f".{views.DATABASE}.{uuid.uuid4().hex[:8]}"
    try:
        views.build_database(
            building,
            sorted((snapshot / "sessions").glob(f"{PARTITION_COLUMN}=*/*.parquet")),
            sorted((snapshot / "rejects").glob("*.parquet")),
        )
        os.replace(building, target)
    except (OSError, duckdb.Error) as exc:
        building.unlink(missing_ok=True)
        raise WarehouseError(f"cannot build {target}: {exc}") from None


def tidy(warehouse: Path) -> None:
    """Remove what killed ingests left, and rebuild the current snapshot's database if the
    warehouse was moved since (its views name files by absolute path). Hold the lock."""
    _clean_leftovers(warehouse)
    snapshot = current_snapshot(warehouse)
    if snapshot is not None and not _database_reads(snapshot):
        build_database(snapshot)


def _database_reads(snapshot: Path) -> bool:
    """Whether the snapshot's database reads the snapshot's own files, where they are now."""
    try:
        con = duckdb.connect(str(snapshot / views.DATABASE), read_only=True)
    except duckdb.Error:
        return False
    try:
        rows = con.sql("SELECT sql FROM duckdb_views() WHERE view_name = 'sessions'").fetchall()
    finally:
        con.close()
    return bool(rows) and ("read_parquet" not in rows[0][0] or str(snapshot) in rows[0][0])


def _clean_leftovers(warehouse: Path) -> None:
    """Remove what killed or finished runs left: staging folders, and snapshots older than
    the current one and the one before it (a reader that listed its files may still read)."""
    shutil.rmtree(warehouse / STAGING, ignore_errors=True)
    snapshots = warehouse / SNAPSHOTS
    if not snapshots.exists():
        return
    current = current_snapshot(warehouse)
    names = sorted(p.name for p in snapshots.iterdir())
    keep = {current.name} if current else set()
    if current and current.name in names:
        index = names.index(current.name)
        keep.update(names[max(index - 1, 0) : index + 1])
    for name in names:
        if name not in keep:
            shutil.rmtree(snapshots / name, ignore_errors=True)
    for stray in warehouse.glob(f".{CURRENT}.*"):
        stray.unlink(missing_ok=True)
