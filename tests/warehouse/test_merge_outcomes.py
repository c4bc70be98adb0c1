"""What a merge decides, pinned down: new, updated and unchanged sessions, the delivery that
wins, the days rewritten or added to, and the same stored rows whichever way the days are
written (each day's COPY from the staged rows, or from the rows sorted by day first)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from pipeline.ingest import ingest
from pipeline.store import merge
from tests.conftest import ndjson, session, stored

Write = Callable[[str, bytes], Path]


def day(n: int) -> str:
    return str(session(n)["timestamp"][:10])


def kinds(wh: Path) -> dict[str, list[str]]:
    """Each day of the table's current version: its files, as `r` (written by a rewrite of
    the day) or `a` (added beside the day's files), oldest run first."""
    days: dict[str, list[str]] = {}
    for uri in sorted(DeltaTable(str(wh / "sessions")).file_uris()):
        path = Path(uri)
        days.setdefault(path.parent.name.removeprefix("date="), []).append(path.stem[-2])
    return days


def test_an_ingest_counts_and_writes_each_outcome(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(28)])))], wh)
    assert all(files == ["a"] for files in kinds(wh).values())
    moved = session(3, timestamp=session(10)["timestamp"])  # day(3) loses its only session
    without_id = session(500, session_id=None, timestamp=session(20)["timestamp"])
    second = [session(1), session(2, duration=99.0), moved, session(100), without_id]
    report = ingest([str(write("b.ndjson", ndjson(second)))], wh)
    assert (report.sessions_new, report.sessions_updated, report.sessions_unchanged) == (2, 2, 1)
    assert report.partitions_written == 5
    after = kinds(wh)
    assert after[day(2)] == ["r"]  # lost its old s2, gained the new one: one file
    assert day(3) not in after  # no session left there: no file
    for gained in (day(10), day(100), day(20)):
        assert after[gained] == ["a", "a"]
    untouched = set(after) - {day(2), day(10), day(100), day(20)}
    assert len(untouched) == 23 and all(after[d] == ["a"] for d in untouched)
    rows = {r["session_key"]: r for r in stored(wh)}
    assert len(rows) == 30  # 28, s100, and the session without an id
    assert rows["s2"]["duration"] == 99.0 and rows["s3"]["date"] == date.fromisoformat(day(10))
    assert [k for k in rows if k.startswith("content:")] != []


def test_the_latest_delivery_wins_with_or_without_an_id(write: Write, wh: Path) -> None:
    nameless = session(7, session_id=None)
    first = [session(1, duration=1.0), session(1, duration=2.0), session(2), nameless, nameless]
    later = [session(1, duration=3.0), session(2, duration=5.0)]
    report = ingest(
        [str(write("a.ndjson", ndjson(first))), str(write("b.ndjson", ndjson(later)))], wh
    )
    assert report.sessions_new == 3 and report.rows_superseded == 4
    rows = stored(wh)
    assert [(r["session_id"], r["duration"]) for r in rows if r["session_id"]] == [
        ("s1", 3.0),
        ("s2", 5.0),
    ]
    assert [Path(r["source_file"]).name for r in rows if r["session_id"]] == ["b.ndjson"] * 2
    assert sum(r["session_id"] is None for r in rows) == 1
    # Delivered again, equal (in another file: a file ingested before is skipped whole):
    # unchanged, nothing written.
    again = ingest([str(write("c.ndjson", ndjson(later[::-1])))], wh)
    assert (again.sessions_unchanged, again.sessions_new, again.partitions_written) == (2, 0, 0)


def test_local_date_follows_the_timezones_duckdb_knows(write: Write, wh: Path) -> None:
    late = "2026-10-01T20:00:00Z"
    records = [
        session(1, timestamp=late, agent_timezone="Asia/Tokyo"),
        session(2, timestamp=late, agent_timezone="Not/AZone"),
        session(3, timestamp=late, agent_timezone=None),
    ]
    ingest([str(write("a.ndjson", ndjson(records)))], wh)
    # A run whose timezones DuckDB knows none of.
    ingest([str(write("b.ndjson", ndjson([session(4, timestamp=late, agent_timezone="x")])))], wh)
    local = {r["session_id"]: str(r["local_date"]) for r in stored(wh)}
    assert local == {"s1": "2026-10-02", "s2": "2026-10-01", "s3": "2026-10-01", "s4": "2026-10-01"}


def _scenario(write: Write, wh: Path) -> list[dict[str, Any]]:
    # Days in no order within the file, so that every staged row group spans them all.
    first = [session(n) for n in (5, 30, 2, 27, 14, 0, 41, 9)]
    ingest([str(write("a.ndjson", ndjson(first)))], wh)
    second = [session(30, duration=1.0), session(9), session(60), session(2, duration=2.0)]
    ingest([str(write("b.ndjson", ndjson(second)))], wh)
    return [{k: v for k, v in r.items() if k != "ingested_at"} for r in stored(wh)]


def test_both_ways_of_writing_the_days_store_the_same_rows(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "MAX_READ_FACTOR", 0)  # always sorted by day first
    sorted_first = _scenario(write, tmp_path / "sorted")
    monkeypatch.setattr(merge, "MAX_READ_FACTOR", 10**9)  # always straight from the staged rows
    straight = _scenario(write, tmp_path / "straight")
    assert len(straight) == 9
    assert sorted_first == straight


def test_the_read_factor_follows_how_the_days_are_staged(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    times = pl.Series([f"2026-10-{d:02d}T12:00:00Z" for d in range(1, 29)]).str.to_datetime(
        time_zone="UTC"
    )
    days = {f"2026-10-{d:02d}" for d in range(1, 29)}
    one_day_each = []
    for i, t in enumerate(times):
        path = tmp_path / f"day{i}.parquet"
        pl.DataFrame({"timestamp": [t]}).write_parquet(path)
        one_day_each.append(path)
    assert merge._read_factor(con, one_day_each, days) == 1.0
    mixed = tmp_path / "mixed.parquet"
    pl.DataFrame({"timestamp": times.shuffle(seed=1)}).write_parquet(mixed)
    assert merge._read_factor(con, [mixed], days) == 28.0
    no_statistics = tmp_path / "plain.parquet"
    pl.DataFrame({"timestamp": times}).write_parquet(no_statistics, statistics=False)
    assert merge._read_factor(con, [no_statistics], days) == 28.0
