"""The view files in other dialects (`sessions views --dialect`): each output parses back in
its dialect, and each rewrite of pipeline/views/dialects.py does what it says. Whether the
Spark output gives DuckDB's answers is tests/spark/'s question."""

from __future__ import annotations

import re

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from pipeline import views
from pipeline.views import dialects, timezones
from tests.conftest import run_cli

OTHERS = ("trino", "bigquery", "snowflake")


@pytest.mark.parametrize("dialect", dialects.DIALECTS)
def test_every_statement_parses_back_in_its_dialect(dialect: str) -> None:
    found = dialects.statements(dialect)
    for statement in found:
        (tree,) = sqlglot.parse(statement, read=dialect)
        assert tree is not None
    # Every view of the files is defined, whatever the dialect.
    names = {re.search(r"VIEW (\w+)", s).group(1) for s in found if " VIEW " in s}  # type: ignore[union-attr]
    assert names == {
        "sessions",
        "rejects",
        "agent_duration_stats",
        "channel_duration_stats",
        "prompt_version_duration_stats",
        "agent_daily_duration_stats",
        "prompt_version_changes",
    }


def test_spark_macros_become_typed_temporary_functions() -> None:
    functions = [s for s in dialects.statements("spark") if "FUNCTION" in s.split("\n")[0]]
    signature = "(since DATE, until DATE, agent STRING, channel STRING, include_tests BOOLEAN)"
    assert len(functions) == 6
    for text in functions:
        assert text.startswith("CREATE OR REPLACE TEMPORARY FUNCTION ")
        assert signature in text.split("\n")[0]
        assert "RETURNS TABLE\nRETURN\n" in text
    assert not any("MACRO" in s for s in dialects.statements("spark"))


@pytest.mark.parametrize("dialect", OTHERS)
def test_elsewhere_macros_are_inlined(dialect: str) -> None:
    for text in dialects.statements(dialect):
        assert "MACRO" not in text and "FUNCTION" not in text
        # No call of a table macro is left: each became its body, parameters bound.
        assert "_for(" not in text.lower() and "sessions_in_scope(" not in text.lower()
    changes = dialects.statements(dialect)[-1]
    # prompt_version_changes inlines prompt_version_duration_stats_for, which inlines
    # sessions_in_scope: the filters of the innermost body, with the view's null arguments.
    assert "FROM sessions" in changes and "local_date >=" in changes


def test_duckdb_output_runs_and_answers_as_the_files_do() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = ", ".join(f'cast(null as {t}) as "{n}"' for n, t in _stored_columns())
    con.execute(f"CREATE TABLE {dialects.STORED_SESSIONS} AS SELECT {columns} LIMIT 0")
    rejects = ", ".join(f'cast(null as {t}) as "{n}"' for n, t in views.REJECT_COLUMNS)
    con.execute(f"CREATE TABLE {dialects.STORED_REJECTS} AS SELECT {rejects} LIMIT 0")
    con.execute(f"""INSERT INTO {dialects.STORED_SESSIONS} (timestamp, agent_id, agent_name,
        agent_timezone, duration, local_date) VALUES
        ('2026-03-08 06:59:59+00', 'a', 'A', 'America/New_York', 1.5, '2026-03-08'),
        ('2026-03-08 07:00:00+00', 'a', 'A', 'ACT', 0, '2026-03-08')""")
    for statement in dialects.statements("duckdb"):
        con.execute(statement)
    rows = con.sql("SELECT local_time, local_timezone FROM sessions ORDER BY 1").fetchall()
    # 01:59:59 EST; ACT (a name the JVM lacks) is not in the list: UTC.
    assert [(str(t), z) for t, z in rows] == [
        ("2026-03-08 01:59:59", "America/New_York"),
        ("2026-03-08 07:00:00", "UTC"),
    ]
    stats = con.sql("SELECT session_count, duration_p50_s FROM agent_duration_stats").fetchall()
    assert stats == [(2, 0.75)]


def _stored_columns() -> list[tuple[str, str]]:
    from schemas import STORED_FIELDS

    return [(f.name, f.duckdb_type) for f in STORED_FIELDS]


def _find(dialect: str, kind: type[exp.Expr]) -> list[exp.Expr]:
    found: list[exp.Expr] = []
    for statement in dialects.statements(dialect):
        found.extend(sqlglot.parse_one(statement, read=dialect).find_all(kind))
    return found


def test_spark_percentiles_are_exact_percentile_of_an_array() -> None:
    text = "\n".join(dialects.statements("spark"))
    assert "PERCENTILE_CONT" not in text
    assert text.count("PERCENTILE(kept_duration, ARRAY(0.5, 0.9, 0.95, 0.99))") == 4
    # DuckDB's lists count from 1, Spark's arrays from 0.
    assert "duration_percentiles[0] AS duration_p50_s" in text
    assert "duration_percentiles[3] AS duration_p99_s" in text


def test_other_dialects_percentiles() -> None:
    assert "APPROX_PERCENTILE(kept_duration, ARRAY[0.5, 0.9, 0.95, 0.99])" in "".join(
        dialects.statements("trino")
    )
    assert "APPROX_QUANTILES(kept_duration, 100)[OFFSET(95)]" in "".join(
        dialects.statements("bigquery")
    )
    snowflake = " ".join(" ".join(dialects.statements("snowflake")).split())
    assert "PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY kept_duration)" in snowflake


def test_timezone_becomes_each_dialects_own() -> None:
    expected = {
        "spark": "CAST(FROM_UTC_TIMESTAMP(CAST(`timestamp` AS TIMESTAMP), local_timezone) AS "
        "TIMESTAMP_NTZ)",
        "trino": 'CAST(AT_TIMEZONE("timestamp", local_timezone) AS TIMESTAMP)',
        "bigquery": "DATETIME(`timestamp`, local_timezone)",
        "snowflake": 'CAST(CONVERT_TIMEZONE(local_timezone, "timestamp") AS TIMESTAMPNTZ)',
    }
    for dialect, text in expected.items():
        sessions = dialects.statements(dialect)[0]
        assert text in sessions, dialect
        assert "TIMEZONE(local_timezone" not in sessions.upper().replace("CONVERT_", "")


def test_dayname_gives_the_full_english_name() -> None:
    spark = " ".join(dialects.statements("spark")[0].split())
    assert "DATE_FORMAT( CAST(FROM_UTC_TIMESTAMP(" in spark
    assert "'EEEE' ) AS local_weekday" in spark
    assert "'Wednesday'" in dialects.statements("snowflake")[0]
    for dialect in ("spark", *OTHERS):
        assert not _find(dialect, exp.Dayname), dialect


def test_arg_max_skips_null_values_as_duckdb_does() -> None:
    rewritten = dialects._rewrite(sqlglot.parse_one("SELECT arg_max(x, y) FROM t"), "spark")
    text = rewritten.sql("spark")
    assert text == "SELECT MAX_BY(x, CASE WHEN NOT x IS NULL THEN y END) FROM t"
    # Spark's max_by keeps a null value, as DuckDB's arg_max_null does: run with that in
    # its place, the rewrite answers as arg_max, and max_by as such would not.
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS FROM (VALUES ('old', 1), ('new', 2), (NULL, 3)) v(x, y)")
    as_spark = text.replace("MAX_BY", "arg_max_null")
    assert con.sql(as_spark).fetchall() == con.sql("SELECT arg_max(x, y) FROM t").fetchall()
    assert con.sql(as_spark).fetchall() == [("new",)]
    assert con.sql("SELECT arg_max_null(x, y) FROM t").fetchall() == [(None,)]


def test_every_dialect_has_the_one_timezone_list() -> None:
    names = timezones.names()
    assert "America/Chicago" in names and "UTC" in names
    # Names DuckDB knows and the JVM does not are left out.
    assert not {"ACT", "AET", "EST", "America/Coyhaique"} & set(names)
    for dialect in dialects.DIALECTS:
        sessions = dialects.statements(dialect)[0]
        listed = re.search(r"IN \(('[^)]*)\)", sessions)
        assert listed is not None, dialect
        assert re.findall(r"'([^']+)'", listed.group(1)) == list(names), dialect


def test_every_listed_timezone_is_one_duckdb_knows() -> None:
    known = {r[0] for r in duckdb.connect().sql("SELECT name FROM pg_timezone_names()").fetchall()}
    assert set(timezones.names()) <= known


def test_order_of_a_macro() -> None:
    assert dialects.order_of("agent_duration_stats_for", "spark") == (
        "ORDER BY session_count DESC, agent_id NULLS LAST"
    )
    # Spark sorts nulls first by default, DuckDB last: sqlglot says so explicitly.
    assert "local_date NULLS LAST" in dialects.order_of("agent_daily_duration_stats_for", "spark")


def test_views_command_prints_each_dialect() -> None:
    result = run_cli("views", "--dialect", "trino")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-- The sessions views in trino SQL")
    statements = [s for s in sqlglot.parse(result.stdout, read="trino") if s is not None]
    assert len(statements) == 7
    spark = run_cli("views", "--dialect", "spark")
    assert spark.returncode == 0
    assert spark.stdout.count(";\n\n") == len(dialects.statements("spark")) - 1
    wrong = run_cli("views", "--dialect", "oracle")
    assert wrong.returncode == 2 and "oracle" in wrong.stderr
    assert "Traceback" not in wrong.stderr
