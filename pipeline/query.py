"""Ask the warehouse's DuckDB views: the stats breakdowns and ad hoc SQL, read-only."""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import views
from pipeline.errors import PipelineError, WarehouseError
from pipeline.output import Column, Kind, escape
from pipeline.scope import Scope
from pipeline.store import database, location, reader, relations
from pipeline.store.location import Warehouse

__all__ = ["QueryError", "Rows", "Scope", "arrow_rows", "connect", "sql", "stats", "stats_rows"]

# Rows fetched from DuckDB at a time: what the output holds in memory, whatever the result.
BATCH_ROWS = 10_000


class QueryError(PipelineError):
    """The SQL a user gave did not run."""

    exit_code = 2


def connect(
    warehouse: Path | str | Warehouse, as_of: int | datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection to the views over one version of the warehouse (`as_of`, else the latest).

    The views are built afresh from that version's own files, where the warehouse is now,
    rather than read from `<warehouse>/sessions.duckdb` (which is brought up to date on the
    way, where it can be). They live in an in-memory database, so that reading writes no file
    (a full disk cannot stop a report); `sql` lets a query do nothing but read (`_one_query`).
    """
    wh, version = reader.version(warehouse, as_of)
    if as_of is None:
        database.refresh(wh, version)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws its own progress bar on stdout for a query over 2 s (a big warehouse,
        # a busy machine), into the CSV or JSON a script reads: never. In a Jupyter kernel
        # DuckDB refuses to touch the setting without ipywidgets (and draws no bar there).
        with contextlib.suppress(duckdb.InvalidInputException):
            con.execute("SET enable_progress_bar = false")
        # A query that spills writes into a folder of its own, never into the warehouse nor
        # the working folder (DuckDB's default for an in-memory database), and not the
        # system's temporary folder itself, which DuckDB would then let a query read (`sql`
        # allows file access to the warehouse and the spill folder only). Made when needed.
        spill = Path(tempfile.gettempdir()) / f"sessions-spill-{uuid.uuid4().hex}"
        atexit.register(shutil.rmtree, spill, ignore_errors=True)
        con.execute(f"SET temp_directory = {views.sql_path(spill)}")
        sources = relations.sessions_source(con, version), relations.rejects_source(con, version)
        for statement in views.statements(*sources):
            con.execute(statement)
        # Which version the views read: `SELECT getvariable('warehouse_version')`.
        con.execute(f"SET VARIABLE warehouse_version = {int(version.number)}")
    except duckdb.Error as exc:
        con.close()
        message = " ".join(str(exc).split())
        raise WarehouseError(f"cannot open the views of {wh}: {message}") from None
    return con


def _stats_query(by: str, scope: Scope) -> tuple[str, dict[str, Any]]:
    # The filters are bound parameters of the view's table macro, never SQL text.
    relation = views.STATS[by]
    return (
        f"SELECT * FROM {relation}_for($since, $until, $agent, $channel, $include_tests)",
        {
            "since": scope.since,
            "until": scope.until,
            "agent": scope.agent,
            "channel": scope.channel,
            "include_tests": scope.include_tests,
        },
    )


def stats(
    warehouse: Path | str, by: str, scope: Scope, as_of: int | datetime | None = None
) -> pa.Table:
    """One stats breakdown (`views.STATS`), for the sessions in `scope`, with its types."""
    text, params = _stats_query(by, scope)
    con = connect(warehouse, as_of)
    try:
        return con.sql(text, params=params).to_arrow_table()
    finally:
        con.close()


@dataclass
class Rows:
    """A result on its way out: its columns, then its rows as Arrow batches of text.

    Each value is already text (see `_as_text`) except intervals, so that every DuckDB type
    reaches the output the same way; the batches are read as they are consumed.
    """

    columns: list[Column]
    batches: Iterator[pa.RecordBatch]


@contextmanager
def stats_rows(
    warehouse: Path | str, by: str, scope: Scope, as_of: int | datetime | None = None
) -> Iterator[Rows]:
    """`stats`, as `Rows` for the output formats."""
    text, params = _stats_query(by, scope)
    con = connect(warehouse, as_of)
    try:
        yield _rows(con, text, params)
    finally:
        con.close()


@contextmanager
def sql(warehouse: Path | str, text: str, as_of: int | datetime | None = None) -> Iterator[Rows]:
    """The result of one read-only statement `text` against the warehouse's views, streamed.

    Only a query (SELECT, FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE) or an EXPLAIN of one
    runs; the connection can read nothing outside the warehouse and write nothing at all.
    """
    query, is_explain = _one_query(text)
    con = connect(warehouse, as_of)
    try:
        _sandbox(con, location.of(warehouse))
        yield _rows(con, query, None, wrap=not is_explain)
    finally:
        con.close()


def _failed(exc: BaseException, quote: bool = True) -> QueryError:
    """The error as one line without raw control characters; without the quoted query
    (`quote=False`) where the query is our wrapping of the user's, whose lines differ."""
    message = str(exc) if quote else str(exc).split("\nLINE ")[0]
    return QueryError(f"the query failed: {escape(' '.join(message.split()))}")


def _one_query(text: str) -> tuple[str, bool]:
    """`text` as the one query it holds, and whether it is an EXPLAIN; or a QueryError."""
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise _failed(exc) from None
    if not statements:
        raise QueryError("the query is empty")
    if len(statements) > 1:
        raise QueryError(
            f"the query holds {len(statements)} statements; give one at a time "
            "(sessions sql runs a single query)"
        )
    (statement,) = statements
    query = _without_end(statement.query)
    if statement.type == duckdb.StatementType.SELECT:
        return query, False
    if statement.type == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE runs what it explains: only the EXPLAIN of a query is let through.
        explained = re.sub(r"^explain\s+(analy[sz]e\s+)?", "", query, count=1, flags=re.I)
        if explained != query and _is_query(explained):
            return query, True
    kind = statement.type.name.replace("_", " ")
    raise QueryError(
        f"sessions sql is read-only: it runs one query (SELECT, FROM, WITH, VALUES, DESCRIBE, "
        f"SHOW, SUMMARIZE, or EXPLAIN of one), not a statement of type {kind}"
    )


def _without_end(query: str) -> str:
    """`query` without the semicolons (and comments among them) that end it, so that it can
    stand inside parentheses. DuckDB's tokenizer tells a `;` from one in a string or comment."""
    data = query.encode()  # the tokenizer gives byte offsets
    end = len(data)
    for position, token in reversed(duckdb.tokenize(query)):
        if token == duckdb.token_type.comment:
            continue
        if token == duckdb.token_type.operator and data[position:end].lstrip().startswith(b";"):
            end = position
            continue
        break
    return data[:end].decode().strip()


def _is_query(text: str) -> bool:
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error:
        return False
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


def _sandbox(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> None:
    """Let `con` read the warehouse's files and nothing else, for good.

    The views read Parquet files below the warehouse by path, so file access cannot be off
    altogether: it is limited to the warehouse folder (as given and with links resolved),
    then the configuration is locked so that the query cannot undo it. Writing is refused
    before this, by statement type (`_one_query`), and the database is open read-only.
    """
    # An object-storage warehouse is read through Arrow: no file at all.
    folders = sorted({str(wh.local.absolute()), str(wh.local.resolve())}) if wh.local else []
    if folders:
        con.execute("SET allowed_directories = $folders", {"folders": [f + "/" for f in folders]})
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


# DuckDB types by how they reach the output. Arrow would lose some of them (UHUGEINT,
# TIME WITH TIME ZONE, BIT, BIGNUM, GEOMETRY, VARIANT, infinite dates) and others stop
# polars, so every value is made text inside DuckDB, which renders its own types exactly.
_NUMBERS = {
    "tinyint", "smallint", "integer", "bigint", "hugeint",
    "utinyint", "usmallint", "uinteger", "ubigint", "uhugeint",
    "decimal", "bignum", "varint",
}  # fmt: skip
_NESTED = {"struct", "list", "map", "union", "array", "variant"}
_TIMESTAMPS = {
    "timestamp", "timestamp with time zone", "timestamp_s", "timestamp_ms", "timestamp_ns",
}  # fmt: skip


def _kind(type_id: str) -> Kind:
    if type_id in _NUMBERS:
        return "number"
    if type_id in ("float", "double"):
        return "float"
    if type_id == "boolean":
        return "bool"
    if type_id in _NESTED:
        return "json"
    if type_id == "interval":
        return "interval"
    return "text"


def _as_text(column: str, type_id: str) -> str:
    """The SQL that turns `column` of type `type_id` into its output text."""
    if type_id == "interval":
        return column  # months, days and nanoseconds reach Arrow exactly
    if type_id in _NESTED:
        return f"to_json({column})"
    if type_id in _TIMESTAMPS:
        # ISO 8601: 'T' between date and time ('infinity' stays as it is).
        return f"regexp_replace(CAST({column} AS VARCHAR), '^(\\d{{4,}}-\\d\\d-\\d\\d) ', '\\1T')"
    return f"CAST({column} AS VARCHAR)"


@contextmanager
def arrow_rows(table: pa.Table) -> Iterator[Rows]:
    """A result computed outside the views (another engine's, or `sessions compare`'s) as
    `Rows`: its values made text by DuckDB, as the views' are, so that every output writes
    the same text for the same values."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("engine_result", table)
        yield _rows(con, "SELECT * FROM engine_result", None)
    finally:
        con.close()


def _rows(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None, wrap: bool = True
) -> Rows:
    try:
        relation = con.sql(query, params=params)
    except duckdb.Error as exc:
        raise _failed(exc) from None
    if relation is None:  # a statement without a result
        return Rows([], iter(()))
    type_ids = [t.id for t in relation.types]
    columns = [Column(n, _kind(t)) for n, t in zip(relation.columns, type_ids, strict=True)]
    if wrap:  # EXPLAIN cannot be a subquery; its columns are text already
        # Positional names (c0, c1, ...) make duplicate or odd column names harmless.
        names = [f"c{i}" for i in range(len(columns))]
        select = ", ".join(_as_text(n, t) for n, t in zip(names, type_ids, strict=True))
        wrapped = f"SELECT {select} FROM (\n{query}\n) AS q({', '.join(names)})"
        try:
            relation = con.sql(wrapped, params=params)
        except duckdb.Error as exc:
            raise _failed(exc, quote=False) from None
    return Rows(columns, _batches(relation))


def _batches(relation: duckdb.DuckDBPyRelation) -> Iterator[pa.RecordBatch]:
    # Most errors of a query show only as its rows are read (a cast that fails on row
    # 10,000), through DuckDB or through the Arrow stream it feeds.
    try:
        yield from relation.to_arrow_reader(BATCH_ROWS)
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise _failed(exc, quote=False) from None
