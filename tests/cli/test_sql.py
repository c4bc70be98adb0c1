"""`sessions sql` and `sessions stats` output: every DuckDB type, one read-only query, streamed
in bounded memory, and nothing raw on a terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pytest

from pipeline import output, query
from pipeline.ingest import ingest
from pipeline.query import QueryError
from tests.conftest import SESSIONS, measured, ndjson, peak_kib, run_cli, session, tree

FORMATS = ["csv", "json", "table", "markdown"]
# Names that would move the cursor, ring, recolour, reorder or break a line on a terminal.
HOSTILE = [
    "Red\x1b[31mAgent",
    "Bell\x07Agent",
    "Two\nLines",
    "Cr\rReturn",
    "Tab\tbed",
    "Del\x7fete",
    "C1\x9b31mCsi",
    "Bidi\u202eesrever",
    "Line\u2028Sep",
    "Pipe|Agent",
]
# What a terminal acts on: C0 but the line end, DEL, C1, separators, bidi overrides.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One warehouse for the module: no test here writes to it (one checks exactly that)."""
    tmp = tmp_path_factory.mktemp("sql")
    rows = [session(n) for n in range(12)]
    rows += [
        session(100 + i, agent_id=f"hostile-{i}", agent_name=name) for i, name in enumerate(HOSTILE)
    ]
    rows += [session(99, duration=-1), session(98, timestamp="not a time")]
    (tmp / "a.ndjson").write_bytes(ndjson(rows))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SESSIONS_PII_KEY_FILE", str(tmp / "pii.key"))
        ingest([str(tmp / "a.ndjson")], tmp / "warehouse")
    return tmp / "warehouse"


def cli(warehouse: Path, query: str, fmt: str = "json") -> subprocess.CompletedProcess[str]:
    return run_cli("sql", query, "-w", warehouse, "--format", fmt)


def sql(warehouse: Path, text: str, fmt: str = "json") -> subprocess.CompletedProcess[str]:
    """`sessions sql` in this process (the CLI's own two calls), for the many variants of a
    class; each class is also run once through the real CLI (`cli`)."""
    out = io.StringIO()
    try:
        with query.sql(warehouse, text) as rows:
            output.write(rows.columns, rows.batches, fmt, out)
    except QueryError as exc:
        return subprocess.CompletedProcess([], 2, out.getvalue(), f"error: {exc}\n")
    return subprocess.CompletedProcess([], 0, out.getvalue(), "")


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and not RAW.search(result.stderr)
    return result.stderr


# --- every type --------------------------------------------------------------------------------

# (SQL, its JSON value): one column per DuckDB type, each also NULL in a second row.
CATALOGUE = {
    "interval": ("INTERVAL '1 month 2 days 3 hours 4.5 seconds'", "P1M2DT3H4.5S"),
    "interval_negative": ("-INTERVAL '1 day 1 second'", "P-1DT-1S"),
    "interval_years": ("INTERVAL '14 months'", "P1Y2M"),
    "interval_zero": ("INTERVAL '0 seconds'", "PT0S"),
    "list": ("[1, 2, NULL]", [1, 2, None]),
    "struct": ("{'a': 1, 'b': 'x'}", {"a": 1, "b": "x"}),
    "map": ("MAP {'k': 1, 'l': 2}", {"k": 1, "l": 2}),
    "map_int_keys": ("MAP {1: 'a'}", {"1": "a"}),
    "array": ("[1, 2, 3]::INTEGER[3]", [1, 2, 3]),
    "union": ("union_value(num := 2)::UNION(num INTEGER, str VARCHAR)", {"num": 2}),
    "nested_nan": (
        "{'f': 'nan'::DOUBLE, 'l': ['inf'::DOUBLE, 1.5]}",
        {"f": None, "l": [None, 1.5]},
    ),
    "uuid": (
        "'13c6c700-70df-40ae-90c5-b42ae4e8b9fd'::UUID",
        "13c6c700-70df-40ae-90c5-b42ae4e8b9fd",
    ),
    "hugeint": (
        "170141183460469231731687303715884105727::HUGEINT",
        170141183460469231731687303715884105727,
    ),
    "uhugeint": (
        "340282366920938463463374607431768211455::UHUGEINT",
        340282366920938463463374607431768211455,
    ),
    "ubigint": ("18446744073709551615::UBIGINT", 18446744073709551615),
    "bignum": (
        "'123456789012345678901234567890123456789012'::BIGNUM",
        123456789012345678901234567890123456789012,
    ),
    "decimal": ("1.50::DECIMAL(10, 2)", 1.5),
    "decimal38": ("12345678901234567890123456789.123456789::DECIMAL(38, 9)", None),
    "bit": ("'0101'::BIT", "0101"),
    "enum": ("'happy'::ENUM('sad', 'happy')", "happy"),
    "timetz": ("'12:00:00+02'::TIMETZ", "12:00:00+02"),
    "time": ("TIME '12:34:56.789'", "12:34:56.789"),
    "date": ("DATE '2026-10-01'", "2026-10-01"),
    "date_infinity": ("'infinity'::DATE", "infinity"),
    "timestamp": ("TIMESTAMP '2026-10-01 12:00:00.123456'", "2026-10-01T12:00:00.123456"),
    "timestamptz": ("TIMESTAMPTZ '2026-10-01 12:00:00+02'", "2026-10-01T10:00:00+00"),
    "timestamp_ns": (
        "'2026-10-01 12:00:00.123456789'::TIMESTAMP_NS",
        "2026-10-01T12:00:00.123456789",
    ),
    "timestamp_infinity": ("'-infinity'::TIMESTAMP", "-infinity"),
    "blob": ("'\\xAA\\x00ab'::BLOB", "\\xAA\\x00ab"),
    "geometry": ("'POINT(1 2)'::GEOMETRY", "POINT (1 2)"),
    "variant": ("42::VARIANT", 42),
    "json": ("'{\"a\": 1}'::JSON", '{"a": 1}'),
    "nan": ("'nan'::DOUBLE", None),
    "infinity": ("'inf'::FLOAT", None),
    "minus_infinity": ("'-inf'::DOUBLE", None),
    "double": ("0.1::DOUBLE", 0.1),
    "boolean": ("true", True),
    "tinyint": ("-1::TINYINT", -1),
    "null": ("NULL", None),
    "text": ("'plain'", "plain"),
}


def catalogue_query() -> str:
    columns = [f'{sql_text} AS "{name}"' for name, (sql_text, _) in CATALOGUE.items()]
    nulls = [f'NULL AS "{name}"' for name in CATALOGUE]
    return f"SELECT {', '.join(columns)} UNION ALL SELECT {', '.join(nulls)}"


def test_every_duckdb_type_renders_in_every_format(warehouse: Path) -> None:
    query = catalogue_query()
    for fmt in FORMATS:
        result = cli(warehouse, query, fmt)
        assert result.returncode == 0 and result.stderr == "", (fmt, result.stderr)
    rows = json.loads(sql(warehouse, query).stdout)  # strict JSON: no NaN, no Infinity
    assert len(rows) == 2
    assert all(value is None for value in rows[1].values())
    for name, (_, expected) in CATALOGUE.items():
        if name != "decimal38":
            assert rows[0][name] == expected, name
    # Numbers are written exactly, not through a float.
    assert '"decimal38": 12345678901234567890123456789.123456789' in sql(warehouse, query).stdout
    (header, first, nulls) = list(csv.reader(io.StringIO(sql(warehouse, query, "csv").stdout)))
    assert header == list(CATALOGUE)
    texts = dict(zip(header, first, strict=True))
    assert texts["interval"] == "P1M2DT3H4.5S" and texts["nan"] == "nan"
    assert json.loads(texts["struct"]) == {"a": 1, "b": "x"}
    assert texts["decimal38"] == "12345678901234567890123456789.123456789"
    assert nulls == [""] * len(header)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM rejects",
        "SELECT * FROM sessions",
        "SELECT reasons, record FROM rejects WHERE false",  # no rows
        "SELECT * FROM agent_duration_stats",
        "DESCRIBE sessions",
        "SUMMARIZE sessions",
        "SHOW TABLES",
        "EXPLAIN SELECT count(*) FROM sessions",
    ],
)
def test_the_warehouse_s_own_relations_render_in_every_format(warehouse: Path, query: str) -> None:
    for fmt in FORMATS:
        result = sql(warehouse, query, fmt)
        assert result.returncode == 0 and result.stderr == "", (query, fmt, result.stderr)
    rows = json.loads(sql(warehouse, query).stdout)
    if query == "SELECT * FROM rejects":
        assert len(rows) == 2 and all(isinstance(r["reasons"], list) for r in rows)


@pytest.mark.parametrize(
    ("query", "header", "keys"),
    [
        ("SELECT 1 AS a, 2 AS a", ["a", "a"], ["a", "a_2"]),
        ("SELECT 1 AS a, 2 AS a, 3 AS a_2", ["a", "a", "a_2"], ["a", "a_3", "a_2"]),
        (
            "SELECT s.agent_id, t.agent_id FROM sessions s JOIN sessions t USING (session_key) "
            "LIMIT 1",
            ["agent_id", "agent_id"],
            ["agent_id", "agent_id_2"],
        ),
        (
            "SELECT * FROM (SELECT 1 AS x) JOIN (SELECT 1 AS x) USING (x), (SELECT 2 AS x)",
            None,
            None,
        ),
        ('SELECT 1 AS "weird "" name", 2 AS " "', ['weird " name', " "], ['weird " name', " "]),
    ],
)
def test_duplicate_and_odd_column_names(
    warehouse: Path, query: str, header: list[str] | None, keys: list[str] | None
) -> None:
    for fmt in FORMATS:
        assert sql(warehouse, query, fmt).returncode == 0, fmt
    if header is not None:
        assert next(csv.reader(io.StringIO(sql(warehouse, query, "csv").stdout))) == header
        assert list(json.loads(sql(warehouse, query).stdout)[0]) == keys


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT 'nan'::DOUBLE AS v", None),
        ("SELECT 'inf'::DOUBLE AS v", None),
        ("SELECT -'inf'::FLOAT AS v", None),
        ("SELECT -'nan'::DOUBLE AS v", None),
        ("SELECT ['nan'::DOUBLE] AS v", [None]),
        ("SELECT {'x': 'inf'::DOUBLE} AS v", {"x": None}),
        ("SELECT 2.5::DOUBLE AS v", 2.5),
    ],
)
def test_json_never_holds_nan_or_infinity(warehouse: Path, query: str, expected: object) -> None:
    text = sql(warehouse, query).stdout
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in {text}")) == [
        {"v": expected}
    ]


def test_stats_json_never_holds_nan_or_infinity(warehouse: Path) -> None:
    for by in ("agent", "channel", "prompt-version", "day"):
        text = run_cli("stats", "-w", warehouse, "--by", by, "--format", "json").stdout
        rows = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in stats"))
        assert rows and "NaN" not in text and "Infinity" not in text


# --- one query, read-only --------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "/* nothing */", ";", " ; ; "])
def test_an_empty_query_is_an_error(warehouse: Path, query: str) -> None:
    assert "the query is empty" in one_line_error(sql(warehouse, query))


def test_a_query_of_comments_only_is_empty(warehouse: Path) -> None:
    result = run_cli("sql", "-w", warehouse, "--", "-- only a comment")
    assert "the query is empty" in one_line_error(result)
    assert "holds 2 statements" in one_line_error(cli(warehouse, "SELECT 1; SELECT 2"))


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("SELECT 1; SELECT 2", 2),
        ("SELECT 1;\nSELECT 2;\nSELECT 3;", 3),
        ("SELECT count(*) FROM sessions; DROP VIEW sessions", 2),
        ("SET threads = 1; SELECT 1", 2),
    ],
)
def test_several_statements_are_refused_and_counted(
    warehouse: Path, query: str, count: int
) -> None:
    assert f"holds {count} statements" in one_line_error(sql(warehouse, query))


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1;",
        "SELECT 1 -- a comment",
        "SELECT 1; -- a comment",
        "SELECT 1 /* c */ ;  /* d */",
        "SELECT 1;\n-- x\n",
        "SELECT 1 ; ;",
        "/* first */ SELECT 1",
    ],
)
def test_one_statement_with_a_semicolon_or_comment_runs(warehouse: Path, query: str) -> None:
    assert json.loads(sql(warehouse, query).stdout) == [{"1": 1}]


def writes(warehouse: Path, outside: Path) -> list[str]:
    target = warehouse / "written.csv"
    return [
        f"COPY (SELECT 1) TO '{target}'",
        f"COPY (SELECT 1) TO '{outside / 'written.csv'}'",
        f"COPY sessions TO '{outside / 'written.parquet'}' (FORMAT parquet)",
        f"EXPORT DATABASE '{outside / 'export'}'",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'",
        f"ATTACH '{outside / 'new.duckdb'}' AS new",
        f"ATTACH '{warehouse / 'new.duckdb'}' AS new",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO sessions SELECT * FROM sessions",
        "DROP VIEW sessions",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "PRAGMA enable_profiling",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CALL pragma_version()",
        "CHECKPOINT",
        "USE memory",
        "DETACH sessions",
        "BEGIN TRANSACTION",
        "VACUUM",
        "PREPARE p AS SELECT 1",
    ]


def test_only_a_query_runs_and_nothing_is_written(warehouse: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    before = tree(warehouse)
    for statement in writes(warehouse, outside):
        assert "read-only" in one_line_error(sql(warehouse, statement)), statement
    assert "read-only" in one_line_error(cli(warehouse, writes(warehouse, outside)[0]))
    assert tree(warehouse) == before and list(outside.iterdir()) == []


def reads(warehouse: Path, tmp_path: Path) -> list[str]:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    other = tmp_path / "other.parquet"
    duckdb.sql(f"COPY (SELECT 'secret' AS s) TO '{other}' (FORMAT parquet)")
    return [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_text('{warehouse}/../secret.txt')",
        f"SELECT * FROM read_parquet('{other}')",
        f"SELECT * FROM '{other}'",
        f"SELECT * FROM parquet_metadata('{other}')",
        "SELECT count(*) FROM glob('/**')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        f"SELECT * FROM query('SELECT * FROM read_text(''{secret}'')')",
        "SELECT * FROM read_text('http://127.0.0.1:9/x')",
        "SELECT current_setting('enable_external_access') AND false FROM read_text('/etc/passwd')",
    ]


def test_nothing_outside_the_warehouse_can_be_read(warehouse: Path, tmp_path: Path) -> None:
    queries = reads(warehouse, tmp_path)
    for text in queries:
        error = one_line_error(sql(warehouse, text))
        assert "Permission Error" in error, text
    assert "Permission Error" in one_line_error(cli(warehouse, queries[0]))


def test_the_views_and_the_warehouse_files_still_answer(warehouse: Path, tmp_path: Path) -> None:
    # As given, relative to the working directory, and through a link to the folder.
    link = tmp_path / "link"
    link.symlink_to(warehouse)
    queries = {
        "SELECT count(*) AS n FROM sessions": 22,
        "SELECT count(*) AS n FROM rejects": 2,
        "SELECT count(*) AS n FROM agent_duration_stats": 13,
        f"SELECT count(*) AS n FROM read_parquet('{warehouse}/sessions/*/*.parquet')": 22,
    }
    for where, cwd in [(warehouse, None), (Path(warehouse.name), warehouse.parent), (link, None)]:
        for text, n in queries.items():
            result = run_cli("sql", text, "-w", where, "--format", "json", cwd=cwd)
            assert result.returncode == 0, (where, text, result.stderr)
            assert json.loads(result.stdout) == [{"n": n}]


def test_a_query_that_fails_midway_is_one_line(warehouse: Path) -> None:
    for text in [
        "SELECT CAST('x' || range AS INTEGER) FROM range(100000)",
        "SELECT CASE WHEN range > 50000 THEN error('stop here') END FROM range(100000)",
        "SELECT error('late') FROM range(1)",
    ]:
        for fmt in FORMATS:
            one_line_error(sql(warehouse, text, fmt))
    one_line_error(cli(warehouse, "SELECT CAST('x' || range AS INTEGER) FROM range(100000)"))


def test_error_messages_show_control_characters_escaped(warehouse: Path) -> None:
    for text in ['SELECT * FROM "no\x1b[2Jtable"', "SELECT error('bell\x07here')", "SELECT \x9b"]:
        error = one_line_error(sql(warehouse, text))
        assert "\\x" in error, error
    assert "\\x07" in one_line_error(cli(warehouse, "SELECT error('bell\x07here')"))


# --- terminals -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_and_markdown_show_control_characters_escaped(warehouse: Path, fmt: str) -> None:
    query = "SELECT agent_id, agent_name FROM sessions WHERE agent_id LIKE 'hostile-%' ORDER BY 1"
    result = cli(warehouse, query, fmt)
    assert result.returncode == 0 and not RAW.search(result.stdout)
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + len(HOSTILE)  # one row, one line
    for shown in ["\\x1b[31m", "\\x07", "Two\\nLines", "\\r", "\\t", "\\x7f", "\\x9b", "\\u202e"]:
        assert shown in result.stdout
    if fmt == "markdown":
        assert all(line.count(" | ") == 1 for line in lines)  # `|` in a name is escaped
    stats = run_cli("stats", "-w", warehouse, "--format", fmt)
    assert stats.returncode == 0 and not RAW.search(stats.stdout)
    assert len(stats.stdout.splitlines()) == 2 + 3 + len(HOSTILE)


def test_csv_and_json_keep_the_exact_text(warehouse: Path) -> None:
    query = "SELECT agent_name FROM sessions WHERE agent_id LIKE 'hostile-%' ORDER BY agent_id"
    rows = list(csv.reader(io.StringIO(sql(warehouse, query, "csv").stdout, newline="")))
    assert [r[0] for r in rows[1:]] == HOSTILE
    assert [r["agent_name"] for r in json.loads(sql(warehouse, query).stdout)] == HOSTILE


def test_the_table_fixes_widths_on_its_first_rows_and_cuts_later_cells(warehouse: Path) -> None:
    query = "SELECT repeat('x', CASE WHEN range < 10000 THEN 3 ELSE 20 END) AS v FROM range(10001)"
    lines = sql(warehouse, query, "table").stdout.splitlines()
    assert lines[1] == "---" and lines[2] == "xxx" and lines[-1] == "xx…"


# --- memory and pipes ------------------------------------------------------------------------


def peak_rss_mib(args: list[str]) -> tuple[int, float]:
    """Run the CLI with stdout to /dev/null; its exit code and peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "wb") as sink:
        peak = Path(folder) / "peak"
        process = subprocess.run(measured([SESSIONS, *args], peak), stdout=sink, check=False)
        return process.returncode, peak_kib(peak) / 1024


def test_a_large_result_streams_in_bounded_memory(warehouse: Path) -> None:
    # 3M rows of about 80 bytes: 240 MB as CSV. Held whole (as before) the process peaked
    # near 1 GiB; streamed it stays near its start-up size (about 170 MiB, 220 MiB here;
    # in full suite runs on a busy machine 370 and once 530 MiB, not reproduced alone: hence
    # a bound well above those and well below the whole result's).
    query = "SELECT range AS i, repeat('x', 60) || range AS s, range / 7 AS f FROM range(3000000)"
    code, peak = peak_rss_mib(["sql", query, "-w", str(warehouse), "--format", "csv"])
    assert code == 0 and peak < 750, peak


def test_a_reader_that_stops_early_ends_the_output_quietly(warehouse: Path) -> None:
    for fmt in FORMATS:
        process = subprocess.Popen(
            [str(SESSIONS), "sql", "SELECT * FROM range(2000000)", "-w", str(warehouse),
             "--format", fmt],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        assert process.wait(timeout=120) == 0, fmt
        assert process.stderr.read() == b"", fmt
