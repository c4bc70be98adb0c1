"""Data tests on the bundled sample's warehouse: keys unique, durations sane, counts add up."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline import views
from pipeline.ingest import ingest

SAMPLE = Path(__file__).parents[2] / "data" / "samples"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    wh = tmp_path_factory.mktemp("sample") / "wh"
    ingest([str(SAMPLE)], wh)
    return duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)


def one(con: duckdb.DuckDBPyConnection, query: str) -> object:
    return con.sql(query).fetchall()[0][0]


def test_session_keys_are_unique(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "select count(*) - count(distinct session_key) from sessions") == 0
    assert one(con, "select count(*) from sessions where session_key is null") == 0


def test_durations_are_finite_and_not_negative(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "select count(*) from sessions where duration < 0 or isinf(duration)") == 0
    assert one(con, "select count(*) from sessions where isnan(duration)") == 0


@pytest.mark.parametrize("relation", list(views.STATS.values()))
def test_session_counts_add_up(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    sessions = one(con, "select count(*) from sessions where not is_test_session")
    assert one(con, f"select sum(session_count) from {relation}") == sessions
    tests = one(con, "select count(*) from sessions where is_test_session")
    assert one(con, f"select sum(test_sessions_excluded) from {relation}") == tests


@pytest.mark.parametrize("relation", list(views.STATS.values()))
def test_percentiles_are_ordered(con: duckdb.DuckDBPyConnection, relation: str) -> None:
    disordered = f"""select count(*) from {relation} where not (
        duration_min_s <= duration_p50_s and duration_p50_s <= duration_p90_s
        and duration_p90_s <= duration_p95_s and duration_p95_s <= duration_p99_s
        and duration_p99_s <= duration_max_s and duration_count <= session_count)"""
    assert one(con, disordered) == 0
