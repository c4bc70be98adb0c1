"""The rows an ingest changes: latest delivery wins, and only the days that lose a row are
rewritten; pure SQL over the staged rows and the stored version, written as new files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from deltalake.transaction import RemoveAction

from pipeline import memory, views
from pipeline.store import relations, tables
from pipeline.store.runs import Run
from pipeline.store.tables import Version
from schemas import FIELD_NAMES, PARTITION_COLUMN, SESSION_FIELDS, STORED_FIELDS

# A partition that has this many files is rewritten as one file when an ingest adds to it.
MAX_FILES = 8
# Days one partitioned write covers: with every day of a long export open at once, the write
# runs short of memory and spills (42 days of 1M sessions: 2.6 s; 16 at a time: 1.9 s).
DAYS_PER_WRITE = 16


@dataclass
class MergeResult:
    sessions_new: int
    sessions_updated: int
    sessions_unchanged: int
    partitions_written: int
    # The stored files the commit replaces (every file of a rewritten day).
    removes: list[RemoveAction] = field(default_factory=list)


def connect(run: Run, memory_limit: str = memory.MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for the merge: UTC, and spilling into the run's staging folder.

    `memory_limit` is DuckDB's budget (`memory.parse` spells it); past it DuckDB spills.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Inside the run's staging folder: removed with the run, whatever happens to it.
    con.execute(f"SET temp_directory = {views.quote(str(run.staging / 'spill'))}")
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


def merge(run: Run, con: duckdb.DuckDBPyConnection, version: Version | None) -> MergeResult:
    """Write the files of the days the run changes, from its staged accepted rows and the
    stored `version`, under `<staging>/partitions/`; say which stored files they replace.

    Within the run the latest delivery of a session wins (later file, then later record);
    over the warehouse, a delivery replaces the stored session unless its content is equal.
    """
    stored = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    # Files named one by one, never a glob: the warehouse's own path may hold `[` or `*`.
    accepted = sorted(run.accepted.glob("*.parquet"))
    staged = (
        f"read_parquet([{', '.join(views.quote(str(p)) for p in accepted)}], "
        "hive_partitioning = false)"
        if accepted
        else views.empty_relation(_STAGED)
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
    existing = relations.stored(con, version)
    con.execute(f"""
        CREATE TEMP TABLE compared AS
        SELECT i.session_key, i."{PARTITION_COLUMN}" AS new_date,
               e."{PARTITION_COLUMN}" AS old_date,
               CASE WHEN e.session_key IS NULL THEN 'new'
                    WHEN e.content_hash = i.content_hash THEN 'unchanged'
                    ELSE 'updated' END AS outcome
        FROM incoming i
        LEFT JOIN (SELECT session_key, content_hash, "{PARTITION_COLUMN}" FROM {existing}) e
            ON e.session_key = i.session_key
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
    files_in: dict[str, list[tables.StoredFile]] = {}
    for stored_file in version.session_files() if version is not None else []:
        files_in.setdefault(str(stored_file.day), []).append(stored_file)
    rewritten = {
        day
        for day, loses in changed_days.items()
        if loses or len(files_in.get(day, [])) >= MAX_FILES
    }
    kept = (
        f"""SELECT {stored}, "{PARTITION_COLUMN}"
            FROM {relations.stored(con, version, rewritten)}
            WHERE session_key NOT IN (
                SELECT session_key FROM compared WHERE outcome = 'updated')"""
        if any(files_in.get(day) for day in rewritten)
        else None
    )
    changed = f'SELECT {stored}, "{PARTITION_COLUMN}" FROM incoming'
    if counts.get("unchanged"):
        changed += """ WHERE session_key IN (
            SELECT session_key FROM compared WHERE outcome <> 'unchanged')"""
    written = partitions_folder(run)
    written.mkdir()
    # Each write takes only its own days' rows (see _write_partitions).
    if rewritten:
        union = f"{kept} UNION ALL {changed}" if kept else changed
        _write_partitions(con, union, rewritten, written, run, "r")
    if len(rewritten) < len(changed_days):
        _write_partitions(con, changed, set(changed_days) - rewritten, written, run, "a")
    removes = [tables.remove_action(f) for day in sorted(rewritten) for f in files_in.get(day, [])]
    return MergeResult(
        sessions_new=counts.get("new", 0),
        sessions_updated=counts.get("updated", 0),
        sessions_unchanged=counts.get("unchanged", 0),
        partitions_written=len(changed_days),
        removes=removes,
    )


def partitions_folder(run: Run) -> Path:
    """Where the merge writes the new sessions files: `date=YYYY-MM-DD/part-<run>-*.parquet`."""
    return run.staging / "partitions"


def _write_partitions(
    con: duckdb.DuckDBPyConnection, rows: str, days: set[str], folder: Path, run: Run, kind: str
) -> None:
    """`rows` (of `days` only) as one folder per day under `folder`, a few days per write."""
    ordered = sorted(days)
    for start in range(0, len(ordered), DAYS_PER_WRITE):
        group = set(ordered[start : start + DAYS_PER_WRITE])
        written = folder.with_name(f"{folder.name}-{kind}{start}")
        con.execute(f"""
            COPY (SELECT * FROM ({rows})
                  WHERE CAST("{PARTITION_COLUMN}" AS VARCHAR) IN ({_sql_list(group)}))
            TO {views.quote(str(written))}
            (FORMAT parquet, PARTITION_BY ("{PARTITION_COLUMN}"), COMPRESSION zstd,
             FILENAME_PATTERN 'part-{run.run_id}-{kind}{{i}}', WRITE_PARTITION_COLUMNS false)
        """)
        if written.exists():  # no folder where the days have no rows left
            for partition in written.iterdir():
                os.replace(partition, folder / partition.name)
            written.rmdir()


def _sql_list(values: set[str]) -> str:
    # Dates only (YYYY-MM-DD, from DuckDB itself): nothing to escape.
    return ", ".join(f"'{v}'" for v in sorted(values))


def write_rejects(run: Run, con: duckdb.DuckDBPyConnection) -> Path | None:
    """The run's quarantined rows as one Parquet file, tagged with the run; None if none."""
    rejected = sorted(run.rejected.glob("*.parquet"))
    if not rejected:
        return None
    folder = run.staging / "rejects"
    folder.mkdir()
    target = folder / f"part-{run.run_id}.parquet"
    columns = ", ".join(f'"{name}"' for name, _ in tables.REJECT_COLUMNS if name != "run_id")
    con.execute(f"""
        COPY (SELECT {columns}, {views.quote(run.run_id)} AS run_id
              FROM read_parquet([{", ".join(views.quote(str(p)) for p in rejected)}],
                                hive_partitioning = false)
              ORDER BY _file_seq, element, item NULLS FIRST)
        TO {views.quote(str(target))} (FORMAT parquet, COMPRESSION zstd)
    """)
    return folder
