"""Ask the warehouse's DuckDB views: the stats breakdowns and ad hoc SQL, read-only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline import views
from pipeline.errors import PipelineError, WarehouseError
from pipeline.scope import Scope

__all__ = ["QueryError", "Scope", "connect", "sql", "stats"]


class QueryError(PipelineError):
    """The SQL a user gave did not run."""

    exit_code = 2


def connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to `<warehouse>/sessions.duckdb`."""
    path = warehouse / views.DATABASE
    if not path.exists():
        raise WarehouseError(
            f"{path} does not exist: run `sessions ingest EXPORTS --warehouse {warehouse}` first"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot open {path}: {exc}") from None
    con.execute("SET TimeZone = 'UTC'")
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
