"""What an ingest writes: new sessions add a file to their day, an update rewrites its day,
and a day with many files is compacted. Untouched files stay the very same files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deltalake import DeltaTable

from pipeline.ingest import ingest
from pipeline.store.merge import DAYS_PER_WRITE, MAX_FILES
from tests.conftest import ndjson, session, stored

Write = Callable[[str, bytes], Path]


def files(wh: Path) -> dict[str, list[tuple[str, int]]]:
    """Each day's files in the table's current version, as (name, inode): an inode that stays
    is a file not rewritten. (Replaced files stay on disk until vacuum: a glob would list them.)"""
    days: dict[str, list[tuple[str, int]]] = {}
    for uri in sorted(DeltaTable(str(wh / "sessions")).file_uris()):
        path = Path(uri)
        days.setdefault(path.parent.name, []).append((path.name, path.stat().st_ino))
    return days


def day(n: int) -> str:
    return session(n)["timestamp"][:10]


def test_new_sessions_add_a_file_and_leave_the_stored_ones(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(1, 5)])))], wh)
    before = files(wh)
    # s29 falls on the same day as s1; s30 on s2's.
    ingest([str(write("b.ndjson", ndjson([session(29), session(30)])))], wh)
    after = files(wh)
    for name in (f"date={day(1)}", f"date={day(2)}"):
        assert after[name][0] == before[name][0]  # the stored file, not rewritten
        assert len(after[name]) == 2
    for name in (f"date={day(3)}", f"date={day(4)}"):
        assert after[name] == before[name]
    assert sorted(r["session_id"] for r in stored(wh)) == ["s1", "s2", "s29", "s3", "s30", "s4"]


def test_an_update_rewrites_only_the_day_it_leaves(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(1, 4)])))], wh)
    before = files(wh)
    report = ingest([str(write("b.ndjson", ndjson([session(2, duration=99.0)])))], wh)
    after = files(wh)
    assert report.sessions_updated == 1
    rewritten = after[f"date={day(2)}"]
    assert len(rewritten) == 1 and rewritten[0][1] != before[f"date={day(2)}"][0][1]
    assert after[f"date={day(1)}"] == before[f"date={day(1)}"]
    assert {r["session_id"]: r["duration"] for r in stored(wh)}["s2"] == 99.0
    assert len(stored(wh)) == 3


def test_a_day_with_many_files_is_compacted_into_one(write: Write, wh: Path) -> None:
    # Sessions 1, 29, 57, ... all fall on the same day: one ingest each.
    for i in range(MAX_FILES + 1):
        n = 1 + 28 * i
        ingest([str(write(f"{i}.ndjson", ndjson([session(n)])))], wh)
        expected = i + 1 if i < MAX_FILES else 1
        assert len(files(wh)[f"date={day(1)}"]) == expected
    assert len(stored(wh)) == MAX_FILES + 1


def test_an_ingest_over_more_days_than_one_write_covers(write: Write, wh: Path) -> None:
    # 28 days, more than one partitioned write takes: some days gain, some are rewritten.
    assert DAYS_PER_WRITE < 28
    first = ingest([str(write("a.ndjson", ndjson([session(n) for n in range(28)])))], wh)
    assert first.partitions_written == 28 and all(len(f) == 1 for f in files(wh).values())
    updates = [session(n, duration=500.0 + n) for n in range(20)]  # 20 days lose a row
    new = [session(n) for n in range(28, 56)]  # every day gains one
    report = ingest([str(write("b.ndjson", ndjson(updates + new)))], wh)
    assert (report.sessions_updated, report.sessions_new) == (20, 28)
    after = files(wh)
    assert len(after) == 28
    assert sum(len(f) == 1 for f in after.values()) == 20  # rewritten as one file
    assert sum(len(f) == 2 for f in after.values()) == 8  # one file added
    durations = {r["session_id"]: r["duration"] for r in stored(wh)}
    assert len(durations) == 56
    assert all(durations[f"s{n}"] == 500.0 + n for n in range(20))
