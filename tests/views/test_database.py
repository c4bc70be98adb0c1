"""The warehouse's DuckDB database: opens anywhere, in old and new clients, even when empty."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from pipeline import views
from pipeline.ingest import ingest
from tests.conftest import ndjson, run_cli, session

ROOT = Path(__file__).parents[2]
DUCKDB1 = ROOT / ".venv" / "duckdb1" / "bin" / "python"
RELATIONS = ["sessions", "rejects", *views.STATS.values(), "prompt_version_changes"]

COUNT_ALL = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({"version": duckdb.__version__, "counts": {
    name: con.sql(f"select count(*) from {name}").fetchall()[0][0] for name in sys.argv[2:]}}))
"""


@pytest.fixture
def warehouse(write: Callable[[str, bytes], Path], wh: Path) -> Path:
    rows = [session(n) for n in range(20)] + [session(99, duration=-1)]
    ingest([str(write("a.ndjson", ndjson(rows)))], wh)
    return wh


def counts(python: Path | str, database: Path, cwd: Path) -> dict[str, object]:
    result = subprocess.run(
        [str(python), "-c", COUNT_ALL, str(database), *RELATIONS],
        capture_output=True, text=True, cwd=cwd, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_opens_from_any_working_directory(warehouse: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    found = counts(sys.executable, (warehouse / "sessions.duckdb").resolve(), elsewhere)
    assert found["counts"] == {
        "sessions": 20,
        "rejects": 1,
        "agent_duration_stats": 3,
        "channel_duration_stats": 1,
        "prompt_version_duration_stats": 2,
        "agent_daily_duration_stats": 20,
        "prompt_version_changes": 2,
    }


def test_opens_in_a_duckdb_1_0_client(warehouse: Path, tmp_path: Path) -> None:
    assert DUCKDB1.exists(), "run `make test`: it installs the DuckDB 1.0 client"
    old = counts(DUCKDB1, (warehouse / "sessions.duckdb").resolve(), tmp_path)
    new = counts(sys.executable, (warehouse / "sessions.duckdb").resolve(), tmp_path)
    assert old["version"] == "1.0.0" and new["version"] == duckdb.__version__
    assert old["counts"] == new["counts"]


def test_an_empty_warehouse_answers_with_no_rows(
    write: Callable[[str, bytes], Path], wh: Path
) -> None:
    ingest([str(write("empty.ndjson", b""))], wh)
    con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
    for name in RELATIONS:
        assert con.sql(f"select count(*) from {name}").fetchall() == [(0,)]
    assert "local_date" in con.sql("select * from sessions").columns


def test_the_database_follows_every_ingest(
    warehouse: Path, write: Callable[[str, bytes], Path]
) -> None:
    ingest([str(write("b.ndjson", ndjson([session(n) for n in range(20, 25)])))], warehouse)
    con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
    assert con.sql("select count(*) from sessions").fetchall() == [(25,)]


def test_it_holds_only_views_and_macros(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
    assert con.sql("select count(*) from duckdb_tables() where not temporary").fetchall() == [(0,)]
    names = {
        r[0] for r in con.sql("select view_name from duckdb_views() where not internal").fetchall()
    }
    assert names == set(RELATIONS)


def test_sessions_view_has_local_time_dimensions(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
    row = con.sql(
        "select timestamp, local_timezone, local_time, local_date, local_hour, local_week_start, "
        "is_test_session from sessions where session_id = 's1'"
    ).fetchall()[0]
    # s1: 2026-10-02T12:01:00Z, agent in America/Chicago (UTC-5 in October)
    assert (
        row[1:]
        == (
            "America/Chicago",
            row[2],
            row[2].date(),
            7,
            row[5],
            False,
        )
        and str(row[2]) == "2026-10-02 07:01:00"
        and str(row[5]) == "2026-09-28"
    )


def test_every_measure_is_in_the_metric_dictionary(warehouse: Path) -> None:
    dictionary = views.sql_text("metrics.md")
    con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
    for relation in views.STATS.values():
        for column in con.sql(f"select * from {relation}").columns:
            if column.endswith(("_s", "_count", "_share", "_at", "_excluded")):
                assert f"`{column}`" in dictionary, (relation, column)


def test_readme_documents_every_view_with_an_example() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in RELATIONS:
        assert f"### `{name}`" in readme


def test_stats_command_formats(warehouse: Path) -> None:
    csv = run_cli("stats", "-w", warehouse, "--format", "csv")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith(
        "agent_id,agent_name,session_count"
    )
    rows = json.loads(
        run_cli("stats", "-w", warehouse, "--by", "channel", "--format", "json").stdout
    )
    assert rows[0]["session_count"] == 20 and rows[0]["channel_manager_type"] == "voice_twilio_v1"
    markdown = run_cli(
        "stats", "-w", warehouse, "--by", "prompt-version", "--format", "markdown"
    ).stdout
    assert markdown.startswith("| prompt_id |") and markdown.count("\n") == 4
    table = run_cli(
        "stats", "-w", warehouse, "--by", "day", "--format", "table", "--agent", "agent-1"
    )
    assert table.returncode == 0 and "agent-1" in table.stdout and "agent-2" not in table.stdout
    explain = run_cli("stats", "--explain")
    assert explain.returncode == 0 and "duration_p90_s" in explain.stdout


def test_sql_command_is_read_only_and_errors_are_one_line(warehouse: Path) -> None:
    ok = run_cli("sql", "select count(*) as n from sessions", "-w", warehouse, "--format", "json")
    assert json.loads(ok.stdout) == [{"n": 20}]
    for statement, error in [
        ("drop view sessions", "error: sessions sql is read-only"),
        ("create table t as select 1", "error: sessions sql is read-only"),
        ("select * from nowhere", "error: the query failed"),
    ]:
        result = run_cli("sql", statement, "-w", warehouse)
        assert result.returncode == 2 and result.stderr.count("\n") == 1
        assert result.stderr.startswith(error)
    assert (
        run_cli("sql", "select count(*) from sessions", "-w", warehouse).stdout
        == "count_star()\n20\n"
    )


def test_commands_on_a_missing_warehouse_say_what_to_do(tmp_path: Path) -> None:
    result = run_cli("stats", "-w", tmp_path / "none")
    assert result.returncode == 3 and "run `sessions ingest" in result.stderr


def test_a_database_of_other_view_definitions_is_built_again(warehouse: Path) -> None:
    # As an older release left it: its views say nothing of this release's definitions.
    database = warehouse / "sessions.duckdb"
    con = duckdb.connect(str(database))
    con.execute("COMMENT ON VIEW sessions IS 'sessions-analytics views 0000000000000000'")
    con.execute("CREATE OR REPLACE VIEW prompt_version_changes AS SELECT 1 AS old")
    con.close()
    result = run_cli("sql", "SELECT count(*) AS n FROM prompt_version_changes", "-w", warehouse)
    assert result.returncode == 0 and result.stdout == "n\n2\n", result.stderr
    con = duckdb.connect(str(database), read_only=True)
    assert con.sql("SELECT count(*) FROM prompt_version_changes").fetchall() == [(2,)]
    comments = con.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'sessions'")
    assert comments.fetchall() == [(views.definitions_id(),)]
