"""The rows an ingest changes: latest delivery wins, and only the days that lose a row are
rewritten; pure SQL over the staged rows and the stored version, written as new files."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
from deltalake.transaction import RemoveAction

from pipeline import memory, views
from pipeline.store import relations, tables
from pipeline.store.runs import Run
from pipeline.store.tables import Version
from pipeline.views import timezones as zones
from schemas import FIELD_NAMES, PARTITION_COLUMN, STORED_FIELDS

# A partition that has this many files is rewritten as one file when an ingest adds to it.
MAX_FILES = 8
# Each day is written by a COPY of its own that reads only the staged row groups holding
# it (DuckDB skips the others by their timestamp statistics). When the staged rows are
# scattered over the days so that the per-day COPYs together would read more than this many
# times the staged rows, the rows are first rewritten sorted by day (one sort) instead.
# Measured on 1M sessions over 42 days: each time the staged rows more read costs ~0.9 CPU s
# (read factor 1.9: 5.8 CPU s in all; 6.0: 9.4), the sort ~13 CPU s: even at 16.
MAX_READ_FACTOR = 16
# Days written at once, one COPY each: a single day's COPY is mostly one thread (one row
# group to compress), so two side by side keep both cores busy. (One COPY with DuckDB's
# PARTITION_BY took 2-3x the CPU of the per-day COPYs on 1M sessions.)
WRITERS = 2
# Days one COPY writes (a write never holds several days' rows open at once, as DuckDB's
# PARTITION_BY did, whose buffers could not spill).
DAYS_PER_WRITE = 1
# A Parquet writer holds a row group whole before it writes it, and cannot spill it: a day of
# 100,000 sessions of 5 kB each held 500 MB, beyond the ingest's 320 MB. So a row group holds
# at most this share of DuckDB's budget (two writers side by side); at 320 MB, 20 MB: more
# than a typical day's rows, so a typical file keeps one row group.
ROW_GROUP_SHARE = 16
# How the stored files are compressed: zstd at its fastest level. DuckDB's default level (3)
# spent 0.4 CPU s more writing 1M sessions, for files 0.8% smaller.
STORED_COMPRESSION = "COMPRESSION zstd, COMPRESSION_LEVEL 1"


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
    return con


def _content_hash_sql() -> str:
    # Stable across versions (md5 of text), unlike an engine's internal row hash.
    parts = []
    for name in (*FIELD_NAMES, "extra_fields"):
        value = f'epoch_us("{name}")' if name == "timestamp" else f'"{name}"'
        parts.append(f"coalesce(CAST({value} AS VARCHAR), chr(0))")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def _local_date_sql(timezones: list[str]) -> str:
    """The rule the `sessions` view states for local times, as it states it: the agent's
    timezone where it is a name every engine knows (`views.timezones`), else UTC. `timezones`
    are the run's timezones of that list, found once: a per-row lookup costs more."""
    if not timezones:
        return "CAST(timezone('UTC', \"timestamp\") AS DATE)"
    names = ", ".join(views.quote(name) for name in timezones)
    return f"""CAST(timezone(
        CASE WHEN agent_timezone IN ({names}) THEN agent_timezone ELSE 'UTC' END,
        "timestamp") AS DATE)"""


# Scratch tables of a merge, in the connection's in-memory database (not TEMP: the writers'
# cursors are connections of their own, and see only the database's tables).
_KEYED, _LOSERS = "_merge_keyed", "_merge_losers"
_MATCHED, _COMPARED = "_merge_matched", "_merge_compared"


def merge(run: Run, con: duckdb.DuckDBPyConnection, version: Version | None) -> MergeResult:
    """Write the files of the days the run changes, from its staged accepted rows and the
    stored `version`, under `<staging>/partitions/`; say which stored files they replace.

    Within the run the latest delivery of a session wins (later file, then later record);
    over the warehouse, a delivery replaces the stored session unless its content is equal.
    """
    written = partitions_folder(run)
    written.mkdir()
    # Files named one by one, never a glob: the warehouse's own path may hold `[` or `*`.
    accepted = sorted(run.accepted.glob("*.parquet"))
    if not accepted:
        return MergeResult(0, 0, 0, 0)
    try:
        return _merge(run, con, version, accepted, written)
    finally:
        for table in (_KEYED, _LOSERS, _MATCHED, _COMPARED):
            # After a failure the connection may refuse: that failure is the one to raise.
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {table}")


def _merge(
    run: Run,
    con: duckdb.DuckDBPyConnection,
    version: Version | None,
    accepted: list[Path],
    written: Path,
) -> MergeResult:
    files = f"[{', '.join(views.quote(str(p)) for p in accepted)}]"
    # `filename` and `file_row_number` name a staged row: the deliveries that lose are
    # dropped by them.
    staged = (
        f"read_parquet({files}, hive_partitioning = false, filename = true, file_row_number = true)"
    )
    # Whether any session comes twice (or without an id, keyed by its content), and the
    # timezones of the run that DuckDB knows: two passes over one narrow column each.
    rows, with_id, ids = con.execute(
        f"SELECT count(*), count(session_id), count(DISTINCT session_id) FROM {staged}"
    ).fetchall()[0]
    known = sorted(
        name
        for (name,) in con.execute(f"""
            SELECT DISTINCT agent_timezone FROM {staged}
            WHERE agent_timezone IN ({zones.sql_list()})
        """).fetchall()
    )
    content_hash = _content_hash_sql()
    day = 'CAST("timestamp" AS DATE)'
    losers = 0
    if rows == with_id == ids:
        # Every session once, by its id: the key is the id, nothing is superseded.
        keys = f'(SELECT session_id AS session_key, {day} AS "{PARTITION_COLUMN}" FROM {staged})'
        source = staged
    else:
        # Keys hashed only where there is no id; the window that picks the latest delivery
        # runs only over the sessions delivered more than once (the costliest step).
        con.execute(f"""
            CREATE TABLE {_KEYED} AS
            SELECT filename, file_row_number, _file_seq, _element, _item,
                coalesce(session_id,
                         'content:' || CASE WHEN session_id IS NULL THEN {content_hash} END)
                    AS session_key,
                {day} AS "{PARTITION_COLUMN}"
            FROM {staged}
        """)
        con.execute(f"""
            CREATE TABLE {_LOSERS} AS
            SELECT filename, file_row_number FROM {_KEYED}
            WHERE session_key IN (
                SELECT session_key FROM {_KEYED} GROUP BY session_key HAVING count(*) > 1)
            QUALIFY row_number() OVER (
                PARTITION BY session_key
                ORDER BY _file_seq DESC, _element DESC, _item DESC NULLS LAST) > 1
        """)
        losers = con.execute(f"SELECT count(*) FROM {_LOSERS}").fetchall()[0][0]
        keys = (
            f'(SELECT session_key, "{PARTITION_COLUMN}" FROM {_KEYED} k '
            f"ANTI JOIN {_LOSERS} l USING (filename, file_row_number))"
        )
        source = (
            f"(SELECT s.* FROM {staged} s ANTI JOIN {_LOSERS} l USING (filename, file_row_number))"
            if losers
            else staged
        )
    # Each kept delivery with everything stored: key, content hash, local date, its day.
    incoming = f"""
        SELECT *, {day} AS "{PARTITION_COLUMN}" FROM (
            SELECT *, coalesce(session_id, 'content:' || content_hash) AS session_key FROM (
                SELECT *, {content_hash} AS content_hash, {_local_date_sql(known)} AS local_date
                FROM {source}))"""

    # The stored sessions the run delivers again (read: their key, hash and day only), and
    # how each compares with its new delivery (hashed here only for these sessions).
    existing = relations.stored(con, version)
    # (Into an empty warehouse, nothing to read.)
    among = (
        f"session_key IN (SELECT session_key FROM {keys})"
        if version is not None and version.session_files()
        else "false"
    )
    con.execute(f"""
        CREATE TABLE {_MATCHED} AS
        SELECT session_key, content_hash, "{PARTITION_COLUMN}" FROM {existing} WHERE {among}
    """)
    con.execute(f"""
        CREATE TABLE {_COMPARED} AS
        SELECT i.session_key, i."{PARTITION_COLUMN}" AS new_date,
               m."{PARTITION_COLUMN}" AS old_date,
               CASE WHEN m.content_hash = i.content_hash THEN 'unchanged'
                    ELSE 'updated' END AS outcome
        FROM (SELECT session_key, content_hash, "{PARTITION_COLUMN}" FROM ({incoming})
              WHERE session_key IN (SELECT session_key FROM {_MATCHED})) i
        JOIN {_MATCHED} m ON m.session_key = i.session_key
    """)
    counts = dict(con.execute(f"SELECT outcome, count(*) FROM {_COMPARED} GROUP BY ALL").fetchall())
    counts["new"] = rows - losers - sum(counts.values())
    unchanged = f"SELECT session_key FROM {_COMPARED} WHERE outcome = 'unchanged'"
    # Every day the run changes, and whether it loses a row there (an updated session's old
    # version) or only gains some.
    gains = f'SELECT "{PARTITION_COLUMN}" FROM {keys}'
    if counts.get("unchanged"):
        gains += f" WHERE session_key NOT IN ({unchanged})"
    changed_days = {
        str(d): loses
        for d, loses in con.execute(f"""
            SELECT d, bool_or(loses) FROM (
                SELECT DISTINCT "{PARTITION_COLUMN}" AS d, false AS loses FROM ({gains})
                UNION ALL SELECT old_date, true FROM {_COMPARED} WHERE outcome = 'updated')
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
        d for d, loses in changed_days.items() if loses or len(files_in.get(d, [])) >= MAX_FILES
    }

    stored = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    changed = f'SELECT {stored}, "{PARTITION_COLUMN}" FROM ({incoming})'
    if counts.get("unchanged"):
        changed += f" WHERE session_key NOT IN ({unchanged})"
    group_bytes = row_group_bytes(con)
    if _read_factor(con, accepted, set(changed_days)) > MAX_READ_FACTOR:
        # Scattered days: sorted by day once, so that each day's COPY reads its own rows.
        ordered = run.staging / "spill" / "by-day.parquet"
        ordered.parent.mkdir(exist_ok=True)
        con.execute(f"""
            COPY ({changed} ORDER BY "{PARTITION_COLUMN}") TO {views.quote(str(ordered))}
            (FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE 16384,
             ROW_GROUP_SIZE_BYTES {group_bytes})
        """)
        by_day = f"read_parquet({views.quote(str(ordered))}, hive_partitioning = false)"

        def new_rows(d: str) -> str:
            return f"SELECT {stored} FROM {by_day} WHERE \"{PARTITION_COLUMN}\" = DATE '{d}'"
    else:

        def new_rows(d: str) -> str:
            # On `timestamp` itself, so that DuckDB skips the staged row groups of other days
            # by their statistics; the same as the UTC date of `timestamp` being `d`.
            start, end = date.fromisoformat(d), date.fromisoformat(d) + timedelta(days=1)
            within = (
                f"\"timestamp\" >= TIMESTAMPTZ '{start} 00:00:00+00' "
                f"AND \"timestamp\" < TIMESTAMPTZ '{end} 00:00:00+00'"
            )
            return f"SELECT {stored} FROM ({changed}) WHERE {within}"

    updated = f"SELECT session_key FROM {_COMPARED} WHERE outcome = 'updated'"

    def rows_of(cur: duckdb.DuckDBPyConnection, d: str) -> str:
        if d not in rewritten or not files_in.get(d):
            return new_rows(d)
        # The day's stored rows but those the run updates, and its new rows.
        kept = relations.stored(cur, version, {d})
        return (
            f"SELECT {stored} FROM {kept} WHERE session_key NOT IN ({updated}) "
            f"UNION ALL {new_rows(d)}"
        )

    def write(cur: duckdb.DuckDBPyConnection, d: str) -> None:
        kind = "r" if d in rewritten else "a"
        folder = written / f"{PARTITION_COLUMN}={d}"
        folder.mkdir()
        target = folder / f"part-{run.run_id}-{kind}0.parquet"
        count = cur.execute(f"""
            COPY ({rows_of(cur, d)}) TO {views.quote(str(target))}
            (FORMAT parquet, {STORED_COMPRESSION}, ROW_GROUP_SIZE_BYTES {group_bytes})
        """).fetchall()[0][0]
        if not count:  # a rewritten day with no rows left: no file, and no folder
            target.unlink()
            folder.rmdir()

    days = sorted(changed_days)
    # With a day for each writer, each COPY on one thread: two COPYs on two threads each
    # spent 7% more CPU (1M sessions, 42 days) contending for the same two cores.
    one_each = len(days) >= WRITERS
    if one_each:
        con.execute("SET threads = 1")
    try:
        _in_parallel(con, write, days)
    finally:
        if one_each:
            with contextlib.suppress(duckdb.Error):  # the failure raised is the COPY's
                con.execute("RESET threads")
    removes = [tables.remove_action(f) for d in sorted(rewritten) for f in files_in.get(d, [])]
    return MergeResult(
        sessions_new=counts.get("new", 0),
        sessions_updated=counts.get("updated", 0),
        sessions_unchanged=counts.get("unchanged", 0),
        partitions_written=len(changed_days),
        removes=removes,
    )


def row_group_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The most a Parquet row group written on `con` may hold (see `ROW_GROUP_SHARE`); DuckDB
    keeps to it where it need not keep the rows' order, as every write here."""
    (limit,) = con.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    return max(memory.bytes_of(limit) // ROW_GROUP_SHARE, 1 << 20)


def _read_factor(con: duckdb.DuckDBPyConnection, accepted: list[Path], days: set[str]) -> float:
    """How many times the staged rows the per-day COPYs would read together: each day reads
    the row groups whose `timestamp` range holds it (all of them, without statistics)."""
    if not days:
        return 0.0
    files = f"[{', '.join(views.quote(str(p)) for p in accepted)}]"
    wanted = f"[{', '.join(f'DATE {views.quote(d)}' for d in sorted(days))}]"
    total, read = con.execute(f"""
        SELECT sum(row_group_num_rows),
            sum(row_group_num_rows * CASE
                WHEN lo IS NULL OR hi IS NULL THEN len({wanted})
                ELSE len(list_filter({wanted}, lambda d: d BETWEEN lo AND hi)) END)
        FROM (
            SELECT row_group_num_rows,
                TRY_CAST(TRY_CAST(stats_min_value AS TIMESTAMPTZ) AS DATE) AS lo,
                TRY_CAST(TRY_CAST(stats_max_value AS TIMESTAMPTZ) AS DATE) AS hi
            FROM parquet_metadata({files}) WHERE path_in_schema = 'timestamp')
    """).fetchall()[0]
    return float(read) / float(total) if total else 0.0


def _in_parallel(
    con: duckdb.DuckDBPyConnection,
    work: Callable[[duckdb.DuckDBPyConnection, str], None],
    items: list[str],
) -> None:
    """`work` for every item, on WRITERS cursors of `con` side by side. The calling thread is
    one of them, so that a signal interrupts its query as it would any other; the first
    failure stops the others and is raised."""
    pending = iter(items)
    lock = threading.Lock()
    failures: list[BaseException] = []
    cursors = [con.cursor() for _ in range(WRITERS)]
    for cur in cursors:
        # A cursor is a connection of its own: the merge's settings, said again.
        cur.execute("SET TimeZone = 'UTC'")

    def lane(cur: duckdb.DuckDBPyConnection) -> None:
        while not failures:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                work(cur, item)
            except BaseException as exc:
                failures.append(exc)
                for other in cursors:
                    if other is not cur:
                        other.interrupt()
                raise

    helpers = [threading.Thread(target=_quietly, args=(lane, cur)) for cur in cursors[1:]]
    try:
        for helper in helpers:
            helper.start()
        lane(cursors[0])
    finally:
        for helper in helpers:
            helper.join()
        for cur in cursors:
            cur.close()
    if failures:
        raise failures[0]


def _quietly(
    lane: Callable[[duckdb.DuckDBPyConnection], None], cur: duckdb.DuckDBPyConnection
) -> None:
    # A helper's failure is recorded by `lane` and raised by the calling thread.
    try:
        lane(cur)
    except BaseException:
        return


def partitions_folder(run: Run) -> Path:
    """Where the merge writes the new sessions files: `date=YYYY-MM-DD/part-<run>-*.parquet`."""
    return run.staging / "partitions"


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
        TO {views.quote(str(target))}
        (FORMAT parquet, {STORED_COMPRESSION}, ROW_GROUP_SIZE_BYTES {row_group_bytes(con)})
    """)
    return folder
