"""The warehouse as Delta tables, as its users reach it: time travel (`--as-of`, `history`),
`vacuum` and `optimize`, Delta readers (deltalake, polars), and copies and moves of it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pipeline.generate import as_text, sessions
from pipeline.store import location, tables
from schemas import STORED_FIELDS
from tests.conftest import SESSIONS, ndjson, run_cli, same_csv, session
from tests.conftest import rejects as delta_rejects

Write = Callable[[str, bytes], Path]

# Every stored field of every session, one digest a session: two readers that give the same
# digests give the same sessions, value for value.
COLUMNS = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
DIGESTS = f"SELECT session_key, md5(CAST(ROW({COLUMNS}) AS VARCHAR)) FROM {{}} ORDER BY 1"


def ok(*args: str | Path) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(code: int, *args: str | Path) -> str:
    """Run a command that must fail with `code` and one line on stderr; that line."""
    result = run_cli(*args)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def ingest(wh: Path, path: Path) -> str:
    """Ingest through the CLI; the run's id."""
    report = json.loads(ok("ingest", path, "-w", wh, "--json"))
    assert report["committed"]
    return str(report["run_id"])


def count_and_total(wh: Path, *as_of: str) -> list[list[str]]:
    query = "SELECT count(*), sum(duration) FROM sessions"
    return list(csv.reader(io.StringIO(ok("sql", query, "-w", wh, "--format", "csv", *as_of))))


def history(wh: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ok("history", "-w", wh, "--format", "csv"))))


def cli_digests(wh: Path, *as_of: str) -> list[tuple[str, str]]:
    out = ok("sql", DIGESTS.format("sessions"), "-w", wh, "--format", "csv", *as_of)
    return [(key, digest) for key, digest in list(csv.reader(io.StringIO(out)))[1:]]


def arrow_digests(table: pa.Table) -> list[tuple[str, str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # as the CLI reads: timestamps as text in UTC
    con.register("delta_sessions", table)
    return [(str(k), str(d)) for k, d in con.sql(DIGESTS.format("delta_sessions")).fetchall()]


def database_digests(wh: Path) -> list[tuple[str, str]]:
    """What a DuckDB client of `<wh>/sessions.duckdb` reads."""
    con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return [(str(k), str(d)) for k, d in con.sql(DIGESTS.format("sessions")).fetchall()]
    finally:
        con.close()


def active_files(wh: Path, table: str = "sessions") -> set[str]:
    return {str(p) for p in DeltaTable(str(wh / table)).file_uris()}


def files_on_disk(wh: Path, table: str = "sessions") -> set[str]:
    return {str(p) for p in (wh / table).rglob("*.parquet") if "_delta_log" not in p.parts}


@pytest.fixture
def three_versions(write: Write, wh: Path) -> dict[str, Any]:
    """Three ingests, the later ones updating sessions of the first: each version's answers,
    and the runs, in order."""
    seen: dict[str, Any] = {"runs": [], "counts": [], "digests": []}
    deliveries = [
        [session(n) for n in range(40)],
        [session(n, duration=100.0 + n) for n in range(0, 40, 3)]
        + [session(n) for n in range(40, 50)],
        [session(n, duration=None) for n in range(0, 40, 7)],
    ]
    for i, rows in enumerate(deliveries):
        seen["runs"].append(ingest(wh, write(f"{i}.ndjson", ndjson(rows))))
        seen["counts"].append(count_and_total(wh))
        seen["digests"].append(cli_digests(wh))
    assert len(set(map(str, seen["counts"]))) == 3  # each ingest changed what is read
    return seen


def test_history_lists_every_ingest_and_as_of_reads_each(
    three_versions: dict[str, Any], wh: Path, tmp_path: Path
) -> None:
    versions = history(wh)
    writes = [v for v in versions if v["operation"] == "WRITE"]
    # Newest first, one WRITE per ingest, named by its run.
    assert [v["run_id"] for v in writes] == three_versions["runs"][::-1]
    assert [int(v["version"]) for v in versions] == sorted(
        (int(v["version"]) for v in versions), reverse=True
    )
    for i, entry in enumerate(writes[::-1]):
        expected = three_versions["counts"][i]
        assert count_and_total(wh, "--as-of", entry["version"]) == expected
        moment = datetime.fromisoformat(entry["time"])
        # The time `history` shows, as given (offset +00:00), naive (UTC), and elsewhere.
        naive = moment.replace(tzinfo=None).isoformat()
        paris = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
        for shown in (entry["time"], naive, paris):
            assert count_and_total(wh, "--as-of", shown) == expected, shown
    # A time between two ingests reads the earlier one.
    first, second = (datetime.fromisoformat(w["time"]) for w in writes[::-1][:2])
    between = first + (second - first) / 2
    assert count_and_total(wh, "--as-of", between.isoformat()) == three_versions["counts"][0]
    # Every stored value of version 1 as it was, not just the counts.
    assert cli_digests(wh, "--as-of", writes[-1]["version"]) == three_versions["digests"][0]


def test_stats_and_report_read_the_version_asked(write: Write, wh: Path, tmp_path: Path) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(30)])))
    stats_then = ok("stats", "-w", wh, "--format", "csv")
    ok("report", "-w", wh, "--out", tmp_path / "then" / "r.html")
    version = history(wh)[0]["version"]
    ingest(wh, write("b.ndjson", ndjson([session(n, duration=5.0) for n in range(10, 60)])))
    assert not same_csv(ok("stats", "-w", wh, "--format", "csv"), stats_then)
    assert same_csv(ok("stats", "-w", wh, "--format", "csv", "--as-of", version), stats_then)
    ok("report", "-w", wh, "--out", tmp_path / "now" / "r.html", "--as-of", version)
    for table in ("agents", "channels", "prompt_versions"):
        name = f"r-{table}.csv"
        then = (tmp_path / "then" / name).read_text()
        assert same_csv((tmp_path / "now" / name).read_text(), then), name


@pytest.mark.parametrize("command", ["stats", "sql", "report"])
def test_as_of_that_cannot_be_read_is_one_line(
    command: str, write: Write, wh: Path, tmp_path: Path
) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(5)])))
    extra = {"sql": ["SELECT count(*) FROM sessions"], "report": ["--out", tmp_path / "r.html"]}
    args = [command, *extra.get(command, []), "-w", wh]
    # Not a version nor a time: the option is wrong (2), whatever the warehouse holds.
    for garbage in ("yesterday", "1.5", "-1", "", "2026-13-45", "²", "9" * 20):
        assert "--as-of" in refused(2, *args, "--as-of", garbage)
    # Well formed, but the warehouse has no such version (3).
    assert "no ingest yet" in refused(3, *args, "--as-of", "0")
    assert "no such version" in refused(3, *args, "--as-of", "99")
    for before in ("2000-01-01", "2000-01-01T00:00:00+05:00"):
        assert "no ingest yet" in refused(3, *args, "--as-of", before)
    assert not (tmp_path / "r.html").exists()


def test_as_of_a_time_on_a_copy_reads_by_the_recorded_times(
    three_versions: dict[str, Any], wh: Path, tmp_path: Path
) -> None:
    """`cp -r` gives every log file the copy's time: time travel must not go by those."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(wh), str(copy)], check=True)
    writes = [v for v in history(copy) if v["operation"] == "WRITE"][::-1]
    for entry, expected in zip(writes, three_versions["counts"], strict=True):
        assert count_and_total(copy, "--as-of", entry["time"]) == expected


def test_optimize_compacts_and_vacuum_deletes_what_no_version_reads(write: Write, wh: Path) -> None:
    # Ingests that add to the same days (a file more each), then one that rewrites days.
    for i in range(4):
        rows = [session(n) for n in range(i * 56, (i + 1) * 56)]
        ingest(wh, write(f"add{i}.ndjson", ndjson(rows)))
    ingest(wh, write("update.ndjson", ndjson([session(n, duration=1.5) for n in range(0, 224, 9)])))
    before_files = active_files(wh)
    before = cli_digests(wh)
    stats = ok("stats", "-w", wh, "--format", "csv", "--by", "day")
    pre_optimize = history(wh)[0]["version"]
    assert len(before) == 224

    done = json.loads(ok("optimize", "-w", wh, "--json"))
    after_files = active_files(wh)
    assert done["files_removed"] > done["files_added"] > 0
    assert len(after_files) < len(before_files)
    # The same sessions through the CLI, deltalake, polars and the views file.
    assert cli_digests(wh) == before
    assert arrow_digests(DeltaTable(str(wh / "sessions")).to_pyarrow_table()) == before
    assert arrow_digests(pl.scan_delta(str(wh / "sessions")).collect().to_arrow()) == before
    assert database_digests(wh) == before
    assert same_csv(ok("stats", "-w", wh, "--format", "csv", "--by", "day"), stats)
    # Optimize made a version; no ingest made it, so it names no run.
    assert [(v["operation"], v["run_id"]) for v in history(wh)[:2]] == [
        ("OPTIMIZE", ""),
        ("WRITE", history(wh)[1]["run_id"]),
    ]
    assert history(wh)[1]["run_id"]

    # Optimize deleted nothing: the replaced files stay for older versions until vacuum.
    # (and those the update replaced before it.)
    on_disk = files_on_disk(wh)
    assert on_disk >= before_files | after_files
    assert cli_digests(wh, "--as-of", pre_optimize) == before
    vacuumed = json.loads(ok("vacuum", "-w", wh, "--retain", "0", "--force", "--json"))
    assert vacuumed["files_deleted"] >= len(on_disk - after_files)
    assert files_on_disk(wh) == active_files(wh) == after_files
    assert files_on_disk(wh, "rejects") == active_files(wh, "rejects")
    assert cli_digests(wh) == before and database_digests(wh) == before
    # A version whose files are gone: one line naming vacuum, not a query's failure.
    line = refused(3, "sql", "SELECT 1", "-w", wh, "--as-of", pre_optimize)
    assert "vacuum" in line and f"version {pre_optimize}" in line


def test_vacuum_under_the_retention_needs_force(write: Write, wh: Path) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(5)])))
    ingest(wh, write("b.ndjson", ndjson([session(n, duration=3.0) for n in range(5)])))
    on_disk = files_on_disk(wh)
    assert len(on_disk) > len(active_files(wh))  # a replaced file, still there
    for hours in ("0", "167"):
        assert "--force" in refused(2, "vacuum", "-w", wh, "--retain", hours)
    assert run_cli("vacuum", "-w", wh, "--retain", "-1").returncode == 2
    # The default keeps a week: the file replaced a moment ago stays.
    assert json.loads(ok("vacuum", "-w", wh, "--json"))["files_deleted"] == 0
    assert files_on_disk(wh) == on_disk


STRAY_RUN = "20260101T000000000000Z-deadbeef"


def place_strays(wh: Path) -> list[Path]:
    """What a run killed after it placed its files and before its commits leaves."""
    stray = [
        wh / "sessions" / "date=2026-10-02" / f"part-{STRAY_RUN}-x.parquet",
        wh / "sessions" / "date=2031-01-01" / f"part-{STRAY_RUN}-0.parquet",
        # Its rejects file, placed before the rejects commit that never came.
        wh / "rejects" / f"part-{STRAY_RUN}.parquet",
        wh / "manifests" / f"{STRAY_RUN}.json",
        wh / ".staging" / STRAY_RUN / "accepted" / "000000-000000.parquet",
    ]
    some = next((wh / "sessions").rglob("part-*.parquet"))
    for path in stray:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(some, path)
    return stray


@pytest.mark.parametrize("cleaner", ["vacuum", "ingest"])
def test_files_of_a_run_that_never_committed_are_removed(
    cleaner: str, write: Write, wh: Path
) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(20)])))
    before = cli_digests(wh)
    stray = place_strays(wh)
    # Nobody reads them meanwhile.
    assert cli_digests(wh) == before and database_digests(wh) == before
    if cleaner == "vacuum":
        ok("vacuum", "-w", wh)  # the default retention: these files belong to no version
    else:
        ingest(wh, write("b.ndjson", ndjson([session(n) for n in range(20, 25)])))
    assert [p for p in stray if p.exists()] == []
    assert files_on_disk(wh) == active_files(wh)


def test_sigkill_after_the_files_are_placed_leaves_nothing_after_vacuum(
    write: Write, wh: Path, tmp_path: Path
) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(20)])))
    before = cli_digests(wh)
    big = tmp_path / "big.ndjson"
    data = sessions(40_000, seed=5)
    as_text(data).with_columns(session_id="big_" + data["session_id"]).write_ndjson(big)
    known = files_on_disk(wh)
    process = subprocess.Popen([str(SESSIONS), "ingest", str(big), "-w", str(wh), "-q"])
    # Killed as soon as its first file is in the table's folder: before its commits.
    deadline = time.monotonic() + 120
    while not files_on_disk(wh) - known and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the ingest finished before it was killed"
    assert files_on_disk(wh) - known  # its files, in the folder, in no version
    assert cli_digests(wh) == before
    assert arrow_digests(DeltaTable(str(wh / "sessions")).to_pyarrow_table()) == before
    ok("vacuum", "-w", wh)
    assert files_on_disk(wh) == active_files(wh) == known
    assert not any((wh / ".staging").iterdir()) if (wh / ".staging").exists() else True
    assert cli_digests(wh) == before


def test_delta_readers_give_exactly_the_current_sessions(write: Write, wh: Path) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(60)])))
    # Updates that rewrite days, a session gone to another day, and new ones.
    changed = [session(n, duration=7.25) for n in range(0, 60, 4)]
    moved = [session(5, timestamp="2026-12-24T08:00:00Z")]
    ingest(wh, write("b.ndjson", ndjson([*changed, *moved, session(100)])))
    expected = cli_digests(wh)
    assert len(expected) == 61
    assert arrow_digests(DeltaTable(str(wh / "sessions")).to_pyarrow_table()) == expected
    assert arrow_digests(pl.scan_delta(str(wh / "sessions")).collect().to_arrow()) == expected
    assert database_digests(wh) == expected
    # Every session once, in its own day's partition.
    table = pl.scan_delta(str(wh / "sessions")).collect()
    assert table["session_key"].n_unique() == table.height == 61
    assert (table["timestamp"].dt.date() == table["date"]).all()


@pytest.mark.parametrize("how", ["cp -r", "mv"])
def test_a_copied_or_moved_warehouse_answers_from_its_own_files(
    how: str, write: Write, wh: Path, tmp_path: Path
) -> None:
    ingest(wh, write("a.ndjson", ndjson([session(n) for n in range(30)])))
    ingest(wh, write("b.ndjson", ndjson([session(n, duration=2.0) for n in range(0, 30, 2)])))
    expected = cli_digests(wh)
    other = tmp_path / "elsewhere" / "wh"
    other.parent.mkdir()
    subprocess.run([*how.split(), str(wh), str(other)], check=True)
    if how == "cp -r":
        # The original goes on: a new ingest, then it is taken away altogether.
        ingest(wh, write("c.ndjson", ndjson([session(n) for n in range(30, 40)])))
        assert len(cli_digests(wh)) == 40
        shutil.rmtree(wh)
    assert not wh.exists()
    assert cli_digests(other) == expected
    # The views file, once a command ran on the copy, reads the copy's files.
    assert database_digests(other) == expected
    assert arrow_digests(DeltaTable(str(other / "sessions")).to_pyarrow_table()) == expected
    # And the copy takes ingests of its own.
    ingest(other, write("d.ndjson", ndjson([session(n) for n in range(50, 55)])))
    assert len(cli_digests(other)) == 35 and len(database_digests(other)) == 35


def commit_rejects_of_a_dead_run(wh: Path) -> None:
    """What a run killed between its two commits leaves: its rejects committed to the rejects
    table, its sessions never; the manifest does not list it."""
    dead = wh / "rejects" / f"part-{STRAY_RUN}.parquet"
    con = duckdb.connect()
    source = f"read_parquet('{wh}/rejects/*.parquet')"
    con.execute(
        f"COPY (SELECT * REPLACE ('{STRAY_RUN}' AS run_id) FROM {source}) "
        f"TO '{dead}' (FORMAT parquet)"
    )
    con.close()
    where = location.of(wh)
    table = tables.load(where, tables.REJECTS)
    assert table is not None
    size, rows = dead.stat().st_size, pq.read_metadata(dead).num_rows
    add = tables.add_action(dead.name, size, rows, None, int(time.time() * 1000))
    tables.commit(where, table, tables.REJECTS, [add], [], {}, exclusive=False)


def test_optimize_does_not_keep_the_rejects_of_a_run_that_never_committed(
    write: Write, wh: Path
) -> None:
    rows = [session(n) for n in range(10)] + [session(99, duration=-1)]
    ingest(wh, write("a.ndjson", ndjson(rows)))
    ingest(wh, write("b.ndjson", ndjson([session(98, duration=-2)])))
    shown = ok("sql", "SELECT * FROM rejects ORDER BY ALL", "-w", wh, "--format", "csv")
    commit_rejects_of_a_dead_run(wh)
    assert STRAY_RUN in {r["run_id"] for r in delta_rejects(wh)}
    ok("optimize", "-w", wh)
    ok("vacuum", "-w", wh, "--retain", "0", "--force")
    ingest(wh, write("c.ndjson", ndjson([session(97)])))
    # The rejects table, as any Delta reader sees it, holds the committed runs' rows only.
    assert STRAY_RUN not in {r["run_id"] for r in delta_rejects(wh)}
    assert len(delta_rejects(wh)) == 2
    assert ok("sql", "SELECT * FROM rejects ORDER BY ALL", "-w", wh, "--format", "csv") == shown
