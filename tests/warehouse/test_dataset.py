"""The sessions dataset: one current row per session, the latest delivery winning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
from deltalake import DeltaTable

from pipeline.ingest import ingest
from schemas import arrow_schema
from tests.conftest import ndjson, session, stored

Write = Callable[[str, bytes], Path]


def durations(wh: Path) -> dict[str, float]:
    return {r["session_id"]: r["duration"] for r in stored(wh)}


def test_a_later_file_wins_over_an_earlier_one(write: Write, wh: Path) -> None:
    first = write("a.ndjson", ndjson([session(1, duration=None), session(2)]))
    second = write("b.ndjson", ndjson([session(1, duration=42.0)]))
    report = ingest([str(first), str(second)], wh)
    assert durations(wh) == {"s1": 42.0, "s2": 12.0}
    assert (report.sessions_new, report.rows_superseded) == (2, 1)
    # The order given decides, not the names.
    ingest([str(second), str(first)], tmp := wh.parent / "other")
    assert durations(tmp)["s1"] is None


def test_a_later_line_wins_within_a_file(write: Write, wh: Path) -> None:
    path = write("a.ndjson", ndjson([session(1, duration=1.0), session(1, duration=2.0)]))
    ingest([str(path)], wh)
    assert durations(wh) == {"s1": 2.0}


def test_a_later_ingest_updates_and_counts_unchanged(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(1, duration=None), session(2)])))], wh)
    report = ingest(
        [str(write("b.ndjson", ndjson([session(1, duration=5.0), session(2), session(3)])))], wh
    )
    assert (report.sessions_new, report.sessions_updated, report.sessions_unchanged) == (1, 1, 1)
    assert durations(wh) == {"s1": 5.0, "s2": 12.0, "s3": 13.0}


def test_a_session_whose_date_changes_moves_partition(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(1, timestamp="2026-10-01T23:59:00Z")])))], wh)
    moved = session(1, timestamp="2026-10-02T00:01:00Z")
    ingest([str(write("b.ndjson", ndjson([moved])))], wh)
    rows = stored(wh)
    assert [(r["session_id"], str(r["date"])) for r in rows] == [("s1", "2026-10-02")]
    assert {Path(uri).parent.name for uri in DeltaTable(str(wh / "sessions")).file_uris()} == {
        "date=2026-10-02"
    }


def test_sessions_without_an_id_are_keyed_by_content(write: Write, wh: Path) -> None:
    anonymous = session(1, session_id=None)
    path = write("a.ndjson", ndjson([anonymous, anonymous, session(2, session_id=None)]))
    report = ingest([str(path)], wh)
    assert (report.sessions_new, report.rows_superseded) == (2, 1)
    keys = [r["session_key"] for r in stored(wh)]
    assert all(k.startswith("content:") for k in keys) and len(set(keys)) == 2
    # The same content in another format, in another run, is the same session.
    csv = "timestamp,agent_id,duration\n"  # a different record: a new session
    report = ingest(
        [str(write("b.ndjson", ndjson([anonymous]))), str(write("c.csv", csv.encode()))], wh
    )
    assert report.sessions_unchanged == 1


def test_every_delta_reader_sees_exactly_the_current_sessions(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(100)])))], wh)
    ingest([str(write("b.ndjson", ndjson([session(n, duration=1.0) for n in range(50, 150)])))], wh)
    table = str(wh / "sessions")
    by_deltalake = DeltaTable(table).to_pyarrow_table()
    by_polars = pl.scan_delta(table).select("session_id", "duration").collect()
    by_dataset = DeltaTable(table).to_pyarrow_dataset().count_rows()
    assert by_deltalake.num_rows == 150 and len(set(by_deltalake["session_id"].to_pylist())) == 150
    assert by_polars.height == 150 and by_polars["session_id"].n_unique() == 150
    assert by_dataset == 150
    assert dict(by_polars.iter_rows())["s60"] == 1.0
    # A plain glob also reads the files the update replaced (they stay until vacuum): it is
    # not a way to read the table, as the README says.
    (by_glob,) = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{table}/**/*.parquet', hive_partitioning = false)"
    ).fetchall()[0]
    assert by_glob > 150


def test_the_stored_files_have_the_schema(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(1)])))], wh)
    (uri,) = DeltaTable(str(wh / "sessions")).file_uris()
    written = ds.dataset(uri).schema
    # Names and types as the schema says; nullability is enforced by validation.
    assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in arrow_schema()]


def test_rejects_are_kept_with_source_position_record_and_reasons(write: Write, wh: Path) -> None:
    bad = session(7, duration=-3, is_test="maybe")
    path = write("a.ndjson", ndjson([session(1), bad]))
    ingest([str(path)], wh)
    table = DeltaTable(str(wh / "rejects")).to_pyarrow_table().to_pylist()
    (row,) = table
    assert row["source_file"] == str(path) and row["line"] == 2 and row["position"] == "line 2"
    assert '"duration": -3' in row["record"]
    assert {(r["field"], r["rule"]) for r in row["reasons"]} == {
        ("duration", "negative"),
        ("is_test", "not_a_boolean"),
    }


def test_a_warehouse_path_with_quotes_and_spaces(write: Write, tmp_path: Path) -> None:
    wh = tmp_path / "o'brien's warehouse [1]"
    ingest([str(write("a.ndjson", ndjson([session(1), session(2)])))], wh)
    ingest([str(write("b.ndjson", ndjson([session(2, duration=1.0), session(3)])))], wh)
    con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
    assert con.sql("select count(*) from sessions").fetchall() == [(3,)]
    from pipeline.check import check

    assert check(wh).problems == []
