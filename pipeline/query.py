"""Ask the warehouse's DuckDB views: the stats breakdowns and ad hoc SQL, read-only."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline import views
from pipeline import warehouse as warehouse_module
from pipeline.errors import PipelineError, WarehouseError
from pipeline.scope import Scope

__all__ = ["QueryError", "Scope", "connect", "sql", "stats"]


class QueryError(PipelineError):
    """The SQL a user gave did not run."""

    exit_code = 2


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the views over the warehouse's current snapshot.

    The views are built afresh from the snapshot's own files, where the warehouse is now,
    rather than read from `<warehouse>/sessions.duckdb`, whose views name files by absolute
    path: a moved warehouse's database names files that are gone, and a copy's names the
    original's. They go into a database of their own in the temporary folder, opened
    read-only (a query cannot change a view), and removed once opened.
    """
    snapshot = warehouse_module.readable_snapshot(warehouse)
    sessions, rejects = warehouse_module.snapshot_files(snapshot)
    scratch = Path(tempfile.mkdtemp(prefix="sessions-views-"))
    path = scratch / views.DATABASE
    try:
        views.build_database(path, sessions, rejects)
        con = duckdb.connect(str(path), read_only=True)
    except (OSError, duckdb.Error) as exc:
        message = " ".join(str(exc).split())
        raise WarehouseError(f"cannot open the views of {warehouse}: {message}") from None
    finally:
        # The open connection keeps the file; nothing is left behind when it closes.
        shutil.rmtree(scratch, ignore_errors=True)
    con.execute("SET TimeZone = 'UTC'")
    # A query that spills writes to the system's temporary folder, never into the warehouse.
    con.execute(f"SET temp_directory = {views.sql_path(Path(tempfile.gettempdir()))}")
    return con


def stats(warehouse: Path, by: str, scope: Scope) -> pa.Table:
    """One stats breakdown (`views.STATS`), for the sessions in `scope`.

    The filters are bound parameters of the view's table macro, never SQL text.
    """
    relation = views.STATS[by]
    con = connect(warehouse)
    try:
        return con.sql(
            f"SELECT * FROM {relation}_for($since, $until, $agent, $channel, $include_tests)",
            params={
                "since": scope.since,
                "until": scope.until,
                "agent": scope.agent,
                "channel": scope.channel,
                "include_tests": scope.include_tests,
            },
        ).to_arrow_table()
    finally:
        con.close()


def sql(warehouse: Path, text: str) -> pa.Table:
    """The result of `text`, run read-only against the warehouse's views."""
    con = connect(warehouse)
    try:
        return con.sql(text).to_arrow_table()
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise QueryError(f"the query failed: {message}") from None
    finally:
        con.close()
