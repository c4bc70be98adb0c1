"""The view files, DuckDB SQL, in another SQL dialect: sqlglot's transpiler plus the rewrites
below, for what it does not carry over as the other engine needs. No view is written twice.

The rewrites, each tested on its own (tests/views/test_dialects.py) and, for Spark, run
against DuckDB's answers (tests/spark/):

- Table macros (`create macro f(since, ...) as table ...`): on Spark, a typed
  `CREATE TEMPORARY FUNCTION f(since DATE, ...) RETURNS TABLE RETURN ...` (the types are the
  fields of `pipeline.scope.Scope`); elsewhere each call is inlined (the macro's body, its
  parameters replaced by the call's arguments), and only the views are given.
- `quantile_cont(x, [p, ...])`: sqlglot gives `PERCENTILE_CONT(x, ARRAY(...))`, which Spark
  rejects; `percentile(x, array(...))` is exact and interpolates linearly, as DuckDB does.
  Trino and BigQuery have no exact percentile aggregate: `approx_percentile` and
  `approx_quantiles` (1% steps) stand in, approximately. Snowflake: exact `PERCENTILE_CONT`.
- `timezone(tz, ts)` (the wall time in `tz` of an instant, a timestamp without zone):
  Spark `from_utc_timestamp` cast to TIMESTAMP_NTZ; Trino `AT TIME ZONE`; BigQuery `DATETIME`;
  Snowflake `CONVERT_TIMEZONE`.
- `dayname(x)`: DuckDB says `Monday` where Spark's and Snowflake's `dayname` say `Mon`: the
  full English name by a date format (or, on Snowflake, by the ISO day number).
- `arg_max(x, y)`: DuckDB skips rows whose `x` is null; `max_by` does not, so `y` is nulled
  where `x` is (max_by skips null `y`).
- The timezone list (`timezones.txt`, one list for every engine) is the literal list of the
  `sessions` view, so no engine looks up its own.

The views read two relations the caller provides: `stored_sessions` (the stored fields of the
sessions table's current version) and `stored_rejects` (the rejects of the runs it commits).
"""

from __future__ import annotations

import typing
from datetime import date
from functools import cache

import sqlglot
from sqlglot import exp

from pipeline import views
from pipeline.scope import Scope
from pipeline.views import timezones

DIALECTS = ("spark", "trino", "bigquery", "snowflake", "duckdb")

# The relations the transpiled views read, in place of the DuckDB engine's file lists.
STORED_SESSIONS, STORED_REJECTS = "stored_sessions", "stored_rejects"

# Spark's types of the macros' parameters, by the Python type of the Scope field they take.
_SPARK_TYPES = {date: "DATE", str: "STRING", bool: "BOOLEAN"}

# Each rewrite's result per dialect, as SQL of that dialect; `__x`, `__y`, `__ts` and `__tz`
# stand for the arguments, `__p` for the percentiles (`__n` for BigQuery's 1% steps).
_TIMEZONE = {
    "spark": "CAST(FROM_UTC_TIMESTAMP(__ts, __tz) AS TIMESTAMP_NTZ)",
    "trino": "CAST(__ts AT TIME ZONE __tz AS TIMESTAMP)",
    "bigquery": "DATETIME(__ts, __tz)",
    "snowflake": "CAST(CONVERT_TIMEZONE(__tz, __ts) AS TIMESTAMP_NTZ)",
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAYNAME = {
    "spark": "DATE_FORMAT(__x, 'EEEE')",
    "trino": "FORMAT_DATETIME(__x, 'EEEE')",
    "bigquery": "FORMAT_DATETIME('%A', __x)",
    "snowflake": "DECODE(DAYOFWEEKISO(__x), "
    + ", ".join(f"{n}, '{name}'" for n, name in enumerate(_WEEKDAYS, 1))
    + ")",
}
_PERCENTILES = {
    "spark": "PERCENTILE(__x, ARRAY(__p))",
    "trino": "APPROX_PERCENTILE(__x, ARRAY[__p])",
}
_PERCENTILE_EACH = {
    "bigquery": "APPROX_QUANTILES(__x, 100)[OFFSET(__n)]",
    "snowflake": "PERCENTILE_CONT(__p) WITHIN GROUP (ORDER BY __x)",
}
_MAX_BY = "MAX_BY(__x, CASE WHEN __x IS NOT NULL THEN __y END)"


class DialectError(ValueError):
    """A dialect this module does not write."""


def _template(sql: str, dialect: str, **arguments: exp.Expr) -> exp.Expr:
    """`sql` (of `dialect`) parsed, each `__name` column replaced by its argument."""
    tree = sqlglot.parse_one(sql, read=dialect)

    def fill(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith("__"):
            return arguments[node.name[2:]].copy()
        return node

    return tree.transform(fill)


def _rewrite(tree: exp.Expr, dialect: str) -> exp.Expr:
    """The function rewrites above, for `dialect`."""

    def visit(node: exp.Expr) -> exp.Expr:
        # The arguments first: a rewrite's template holds copies of them, not visited again.
        if isinstance(node, exp.Anonymous | exp.Dayname | exp.ArgMax | exp.PercentileCont):
            for key, value in list(node.args.items()):
                if isinstance(value, exp.Expr):
                    node.set(key, _rewrite(value, dialect))
                elif isinstance(value, list):
                    node.set(
                        key, [_rewrite(v, dialect) if isinstance(v, exp.Expr) else v for v in value]
                    )
        if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
            zone, moment = node.expressions
            return _template(_TIMEZONE[dialect], dialect, tz=zone, ts=moment)
        if isinstance(node, exp.Dayname):
            return _template(_DAYNAME[dialect], dialect, x=node.this)
        if isinstance(node, exp.ArgMax):
            return _template(_MAX_BY, dialect, x=node.this, y=node.expression)
        if isinstance(node, exp.PercentileCont) and isinstance(node.expression, exp.Array):
            return _percentiles(node.this, node.expression.expressions, dialect)
        return node

    return tree.transform(visit)


def _percentiles(value: exp.Expr, points: list[exp.Expr], dialect: str) -> exp.Expr:
    if dialect in _PERCENTILES:
        listed = ", ".join(p.sql(dialect) for p in points)
        return _template(_PERCENTILES[dialect].replace("__p", listed), dialect, x=value)
    each = []
    for point in points:
        text = _PERCENTILE_EACH[dialect].replace("__p", point.sql(dialect))
        steps = str(round(float(point.name) * 100))
        each.append(_template(text.replace("__n", steps), dialect, x=value))
    return exp.Array(expressions=each)


# Stands for the timezone list while the SQL is transpiled, so that pretty printing does not
# give each of its 600 names a line: the list goes in afterwards, a few names a line.
_ZONES = "'__known_timezones__'"


@cache
def _statements() -> tuple[exp.Expr, ...]:
    """The view files, parsed as DuckDB SQL, reading the two stored relations."""
    texts = views.statements(STORED_SESSIONS, STORED_REJECTS, _ZONES)
    return tuple(sqlglot.parse_one(text, read="duckdb") for text in texts)


def _with_zones(sql: str) -> str:
    """`sql` with the timezone list in place of its stand-in, four names a line."""
    names = [f"'{name}'" for name in timezones.names()]
    lines = [", ".join(names[i : i + 4]) for i in range(0, len(names), 4)]
    return sql.replace(_ZONES, ",\n          ".join(lines))


def _macros() -> dict[str, tuple[list[str], exp.Expr]]:
    """Each table macro: its parameters and its body."""
    found = {}
    for statement in _statements():
        if _is_macro(statement):
            function = statement.this
            parameters = [p.name for p in function.expressions]
            found[function.this.name] = (parameters, statement.expression)
    return found


def _is_macro(statement: exp.Expr) -> bool:
    return isinstance(statement, exp.Create) and str(statement.args.get("kind")).upper() == "MACRO"


def _inline(tree: exp.Expr, macros: dict[str, tuple[list[str], exp.Expr]]) -> exp.Expr:
    """Every call of a table macro in `tree` replaced by its body, as a subquery."""

    def visit(node: exp.Expr) -> exp.Expr:
        call = node.this if isinstance(node, exp.Table) else None
        if not isinstance(call, exp.Anonymous) or call.name not in macros:
            return node
        parameters, body = macros[call.name]
        given = dict(zip(parameters, call.expressions, strict=True))

        def bind(inner: exp.Expr) -> exp.Expr:
            if isinstance(inner, exp.Column) and not inner.table and inner.name in given:
                found: exp.Expr = given[inner.name].copy()
                return found
            return inner

        bound = _inline(body.copy().transform(bind), macros)
        alias = node.alias or call.name
        return exp.Subquery(this=bound, alias=exp.TableAlias(this=exp.to_identifier(alias)))

    return tree.transform(visit)


def scope_parameters() -> list[tuple[str, str]]:
    """The macros' parameters, the Scope fields, with their Spark types."""
    hints = typing.get_type_hints(Scope)
    typed = []
    for name, hint in hints.items():
        kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
        typed.append((name, _SPARK_TYPES[kinds[0]]))
    return typed


def _spark_function(statement: exp.Create) -> str:
    function = statement.this
    parameters = [p.name for p in function.expressions]
    typed = scope_parameters()
    if parameters != [name for name, _ in typed]:
        raise AssertionError(
            f"{function.this.name}: parameters {parameters} are not Scope's fields"
        )
    signature = ", ".join(f"{name} {kind}" for name, kind in typed)
    body = _rewrite(statement.expression.copy(), "spark").sql("spark", pretty=True)
    return (
        f"CREATE OR REPLACE TEMPORARY FUNCTION {function.this.name}({signature})\n"
        f"RETURNS TABLE\nRETURN\n{body}"
    )


def _spark_view(statement: exp.Create) -> str:
    name = statement.this.sql("spark")
    body = _rewrite(statement.expression.copy(), "spark").sql("spark", pretty=True)
    return f"CREATE OR REPLACE TEMPORARY VIEW {name} AS\n{body}"


def statements(dialect: str) -> list[str]:
    """The view definitions in `dialect`, in dependency order.

    Spark: temporary functions and views, as `--engine spark` runs them. DuckDB: the files as
    they are (macros and all). Trino, BigQuery, Snowflake: the views, macros inlined.
    """
    if dialect not in DIALECTS:
        raise DialectError(f"unknown dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    if dialect == "duckdb":
        found = [s.sql("duckdb", pretty=True) for s in _statements()]
    elif dialect == "spark":
        found = [
            _spark_function(s) if _is_macro(s) else _spark_view(s)
            for s in _statements()
            if isinstance(s, exp.Create)
        ]
    else:
        macros = _macros()
        found = [
            _rewrite(_inline(s.copy(), macros), dialect).sql(dialect, pretty=True)
            for s in _statements()
            if not _is_macro(s)
        ]
    return [_with_zones(s) for s in found]


def order_of(macro: str, dialect: str) -> str:
    """The ORDER BY of a table macro's result, in `dialect` (`""` where it has none): an engine
    other than DuckDB may not keep a function's order in the query that calls it."""
    _, body = _macros()[macro]
    order = body.args.get("order")
    return order.sql(dialect) if order is not None else ""
