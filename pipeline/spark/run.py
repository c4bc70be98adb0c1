"""`stats` and `sql` on Spark: the transpiled views over one version of the warehouse, the
result handed to the same output as the DuckDB engine's (`query.arrow_rows`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import sqlglot
from sqlglot import exp

from pipeline import views
from pipeline.errors import WarehouseError
from pipeline.output import escape
from pipeline.query import QueryError, Rows, arrow_rows
from pipeline.scope import Scope
from pipeline.spark import session, source
from pipeline.store import reader
from pipeline.views import dialects

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# What a query may be: a query, a description of one, or the list of views.
_READING = (exp.Query, exp.Values, exp.Describe, exp.Show)
# Functions that call Java methods by name: a query could reach outside the views with them.
_REFUSED_FUNCTIONS = {"reflect", "java_method", "try_reflect"}


def connect(
    warehouse: Path | str, as_of: int | datetime | None = None, master: str | None = None
) -> SparkSession:
    """A Spark session with the views over one version of the warehouse (the latest by
    default), as `views --dialect spark` prints them."""
    wh, version = reader.version(warehouse, as_of)
    spark = session.start(wh, master)
    from pyspark.errors import PySparkException

    try:
        source.register(spark, version)
        for statement in dialects.statements("spark"):
            spark.sql(statement)
    except PySparkException as exc:
        raise WarehouseError(f"cannot open the views of {wh} on Spark: {_one_line(exc)}") from None
    return spark


def stats_query(by: str) -> str:
    """The Spark SQL of one breakdown, its filters named parameters; in the view's order,
    which Spark does not keep through the function call."""
    function = f"{views.STATS[by]}_for"
    parameters = ", ".join(f":{name}" for name, _ in dialects.scope_parameters())
    return f"SELECT * FROM {function}({parameters}) {dialects.order_of(function, 'spark')}"


def stats_table(spark: SparkSession, by: str, scope: Scope) -> pa.Table:
    """One breakdown on `spark` (views made by `connect`), as Arrow."""
    arguments = {name: getattr(scope, name) for name, _ in dialects.scope_parameters()}
    return _collect(spark, stats_query(by), arguments)


@contextmanager
def stats_rows(
    warehouse: Path | str,
    by: str,
    scope: Scope,
    as_of: int | datetime | None = None,
    master: str | None = None,
) -> Iterator[Rows]:
    """`stats --engine spark`, as `Rows` for the output formats."""
    spark = connect(warehouse, as_of, master)
    with arrow_rows(stats_table(spark, by, scope)) as rows:
        yield rows


@contextmanager
def sql(
    warehouse: Path | str,
    text: str,
    as_of: int | datetime | None = None,
    master: str | None = None,
) -> Iterator[Rows]:
    """`sql --engine spark`: one read-only Spark SQL query against the views. The result is
    collected on the driver before it is written (Spark's Arrow export is whole)."""
    query = one_query(text)
    spark = connect(warehouse, as_of, master)
    with arrow_rows(_collect(spark, query, None)) as rows:
        yield rows


def one_query(text: str) -> str:
    """`text` as the one read-only Spark SQL query it holds; or a QueryError (exit 2)."""
    if not text.strip().strip(";").strip():
        raise QueryError("the query is empty")
    # sqlglot warns, on stderr, of syntax it keeps as a command (EXPLAIN, SHOW): not ours to say.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        statements = [s for s in sqlglot.parse(text, read="spark") if s is not None]
    except sqlglot.errors.ParseError as exc:
        message = str(exc).splitlines()[0]
        raise QueryError(f"the query cannot be read as Spark SQL: {escape(message)}") from None
    if len(statements) != 1:
        raise QueryError(
            f"the query holds {len(statements)} statements; give one at a time "
            "(sessions sql runs a single query)"
        )
    (statement,) = statements
    explained = re.match(r"\s*explain\s+(extended\s+|formatted\s+|codegen\s+|cost\s+)?", text, re.I)
    if isinstance(statement, exp.Command) and explained:
        rest = text[explained.end() :]
        one_query(rest)  # an EXPLAIN of a query, and only of one
        return text.strip().rstrip(";").strip()
    if isinstance(statement, exp.Command) and re.match(r"\s*show\s", text, re.I):
        return text.strip().rstrip(";").strip()  # SHOW TABLES, SHOW COLUMNS, ...: listings
    if _calls_java(statement):
        raise QueryError(
            f"sessions sql does not let a query call Java ({', '.join(sorted(_REFUSED_FUNCTIONS))})"
        )
    if not isinstance(statement, _READING) or _writes(statement):
        raise QueryError(
            "sessions sql is read-only: it runs one query (SELECT, WITH, VALUES, DESCRIBE, "
            f"SHOW, or EXPLAIN of one), not a statement of type {statement.key.upper()}"
        )
    return text.strip().rstrip(";").strip()


def _writes(statement: exp.Expr) -> bool:
    """Whether anything inside `statement` writes (or is a command sqlglot does not know)."""
    kinds = exp.Create | exp.Insert | exp.Delete | exp.Update | exp.Drop | exp.Merge
    return any(isinstance(node, kinds | exp.Command | exp.Set) for node in statement.walk())


def _calls_java(statement: exp.Expr) -> bool:
    for node in statement.walk():
        if isinstance(node, exp.Anonymous) and node.name.lower() in _REFUSED_FUNCTIONS:
            return True
        if isinstance(node, exp.Func) and node.sql_name().lower() in _REFUSED_FUNCTIONS:
            return True
    return False


def _collect(spark: SparkSession, query: str, arguments: dict[str, object] | None) -> pa.Table:
    from pyspark.errors import PySparkException

    try:
        return spark.sql(query, args=arguments).toArrow()
    except PySparkException as exc:
        raise QueryError(f"the query failed: {escape(_one_line(exc))}") from None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(exc).__name__
