"""The warehouse on object storage (`--warehouse s3://bucket/prefix`), against a real S3 API
served on 127.0.0.1 by moto: ingest, re-ingest, a later delivery, every reading command,
Delta readers, two writers at once, kills mid-ingest, and what a bad place says."""

from __future__ import annotations

import csv
import glob
import io
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipeline import pii
from tests import s3
from tests.conftest import ndjson, run_cli, session, start, write_big_export
from tests.warehouse.conftest import S3Warehouse

Write = Callable[[str, bytes], Path]


def on_day(n: int, day: int, **overrides: Any) -> dict[str, Any]:
    """Session n on 2026-10-<day>."""
    return session(n, timestamp=f"2026-10-{day:02d}T12:{n % 60:02d}:00Z", **overrides)


# The first delivery: 30 sessions over three days, and one line that is not a record.
FIRST = [on_day(n, 1 + n % 3) for n in range(30)]
# A later one: session 4 (of 2026-10-02) corrected, session 5 (of 2026-10-03) as it was, a
# new session on 2026-10-01 and one on a day of its own.
LATER = [on_day(4, 2, duration=999.0), on_day(5, 3), on_day(101, 1), on_day(100, 9)]
AFTER_LATER = {r["session_id"]: r["duration"] for r in FIRST} | {
    "s4": 999.0,
    "s100": 110.0,
    "s101": 111.0,
}


def table(wh: S3Warehouse, name: str = "sessions") -> DeltaTable:
    """A table of the warehouse as deltalake reads it."""
    return DeltaTable(wh.table(name), storage_options=wh.server.storage_options())


def durations(wh: S3Warehouse) -> dict[str, float]:
    """session_id -> duration, as deltalake reads the current version."""
    rows = table(wh).to_pyarrow_table(columns=["session_id", "duration"]).to_pylist()
    found = {row["session_id"]: row["duration"] for row in rows}
    assert len(found) == len(rows), "a session stored twice"
    return found


def log_entry(wh: S3Warehouse, version: int) -> dict[str, list[str]]:
    """The paths a sessions commit adds and removes, from its log entry as stored."""
    fs = wh.server.filesystem()
    key = f"{wh.bucket}/wh/sessions/_delta_log/{version:020d}.json"
    with fs.open_input_stream(key) as stream:
        actions = [json.loads(line) for line in stream.read().decode().splitlines() if line]
    return {
        kind: sorted(a[kind]["path"] for a in actions if kind in a) for kind in ("add", "remove")
    }


def days(paths: list[str]) -> set[str]:
    return {p.split("/", 1)[0] for p in paths}


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def sql(wh: S3Warehouse, query: str, *extra: str) -> list[dict[str, str]]:
    result = run_cli("sql", query, "-w", wh.uri, "--format", "csv", *extra)
    assert result.returncode == 0, result.stderr
    return csv_rows(result.stdout)


def ingest(wh: S3Warehouse, *paths: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("ingest", *paths, "-w", wh.uri, "-q")
    assert result.returncode == 0, result.stderr
    return result


def test_ingest_again_and_a_later_delivery(s3_wh: S3Warehouse, write: Write) -> None:
    first = write("first.ndjson", ndjson([*FIRST, "not a record"]))
    ingest(s3_wh, first)
    assert table(s3_wh).version() == 1
    assert durations(s3_wh) == {r["session_id"]: r["duration"] for r in FIRST}
    stored = s3_wh.server.keys(s3_wh.bucket)

    # The temporary folder of a run killed after its commit (before it removed the folder).
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = Path(tempfile.mkdtemp(prefix=f"sessions-20261001T000000000000Z-0badc0de-pid{gone.pid}-"))
    (left / "accepted").mkdir()

    # The same file again: skipped, and not one object written; the killed run's folder is
    # removed all the same.
    again = run_cli("ingest", first, "-w", s3_wh.uri)
    assert again.returncode == 0, again.stderr
    assert "Skipped" in again.stdout and "unchanged" in again.stdout
    assert not left.exists()
    assert s3_wh.server.keys(s3_wh.bucket) == stored
    assert table(s3_wh).version() == 1

    # A later delivery: the correction wins; only the day that lost a row is rewritten.
    report = run_cli("ingest", write("later.ndjson", ndjson(LATER)), "-w", s3_wh.uri, "--json")
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)
    assert (counts["sessions_new"], counts["sessions_updated"]) == (2, 1)
    assert counts["sessions_unchanged"] == 1
    assert durations(s3_wh) == AFTER_LATER
    entry = log_entry(s3_wh, 2)
    assert days(entry["remove"]) == {"date=2026-10-02"}
    assert days(entry["add"]) == {"date=2026-10-01", "date=2026-10-02", "date=2026-10-09"}
    # The removed file is still there (for readers of version 1) until a vacuum.
    assert f"{s3_wh.bucket}/wh/sessions/{entry['remove'][0]}" in s3_wh.server.keys(s3_wh.bucket)


def test_every_reading_command_and_delta_readers(
    s3_wh: S3Warehouse, write: Write, tmp_path: Path
) -> None:
    ingest(s3_wh, write("first.ndjson", ndjson([*FIRST, "not a record"])))
    ingest(s3_wh, write("later.ndjson", ndjson(LATER)))
    expected = AFTER_LATER

    stats = run_cli("stats", "-w", s3_wh.uri, "--format", "csv")
    assert stats.returncode == 0, stats.stderr
    assert sum(int(r["session_count"]) for r in csv_rows(stats.stdout)) == 32
    # As of version 1, the first ingest: 30 sessions, session 4 as first delivered.
    (old,) = sql(
        s3_wh,
        "SELECT count(*) AS n, sum(duration) FILTER (session_id = 's4') AS s4 FROM sessions",
        "--as-of",
        "1",
    )
    assert (int(old["n"]), float(old["s4"])) == (30, FIRST[4]["duration"])
    (now,) = sql(
        s3_wh,
        "SELECT count(*) AS n, sum(duration) AS total, "
        "(SELECT count(*) FROM rejects) AS rejected, "
        "(SELECT min(source_file) FROM rejects) AS source FROM sessions",
    )
    assert (int(now["n"]), float(now["total"])) == (32, sum(expected.values()))
    assert now["rejected"] == "1" and now["source"].endswith("/first.ndjson")

    out = tmp_path / "report" / "report.html"
    report = run_cli("report", "-w", s3_wh.uri, "--out", out)
    assert report.returncode == 0, report.stderr
    assert out.stat().st_size > 0 and (out.parent / "report-agents.csv").exists()

    check = run_cli("check", "-w", s3_wh.uri)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout and "32 sessions" in check.stdout

    history = run_cli("history", "-w", s3_wh.uri, "--format", "csv")
    assert history.returncode == 0, history.stderr
    versions = csv_rows(history.stdout)
    assert [v["version"] for v in versions] == ["2", "1", "0"]
    assert all(v["run_id"] for v in versions[:2]) and not versions[2]["run_id"]

    # Compaction: one file a day, the same rows.
    optimized = run_cli("optimize", "-w", s3_wh.uri, "--json")
    assert optimized.returncode == 0, optimized.stderr
    assert json.loads(optimized.stdout)["files_removed"] > 0
    assert durations(s3_wh) == expected
    files = pa.table(table(s3_wh).get_add_actions(flatten=True))["path"].to_pylist()
    assert len(files) == len(days(files)) == 4

    # Vacuum with no retention: the replaced files go, and the current version reads whole.
    before = s3_wh.server.keys(f"{s3_wh.bucket}/wh/sessions")
    vacuumed = run_cli("vacuum", "-w", s3_wh.uri, "--retain", "0", "--force", "--json")
    assert vacuumed.returncode == 0, vacuumed.stderr
    after = s3_wh.server.keys(f"{s3_wh.bucket}/wh/sessions")
    parquet = sorted(k for k in after if k.endswith(".parquet"))
    assert parquet == sorted(f"{s3_wh.bucket}/wh/sessions/{f}" for f in files)
    assert json.loads(vacuumed.stdout)["files_deleted"] == len(
        [k for k in before if k.endswith(".parquet")]
    ) - len(parquet)

    # After the vacuum, any Delta reader: deltalake, polars, DuckDB over deltalake's Arrow
    # dataset (and the CLI, which reads through the same dataset).
    options = s3_wh.server.storage_options()
    frame = pl.scan_delta(s3_wh.table("sessions"), storage_options=options).collect()
    assert dict(zip(frame["session_id"], frame["duration"], strict=True)) == expected
    dataset = table(s3_wh).to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("delta_sessions", dataset)
    found = con.sql("SELECT session_id, duration FROM delta_sessions").fetchall()
    assert dict(found) == expected
    assert (
        sum(int(r["session_count"]) for r in csv_rows(run_cli("stats", "-w", s3_wh.uri).stdout))
        == 32
    )


# --- two writers ----------------------------------------------------------------------------


def session_ids(wh: S3Warehouse) -> set[str]:
    return set(durations(wh))


def test_two_writers_at_once_one_wins_and_the_other_loses_nothing(
    s3_wh: S3Warehouse, write: Write
) -> None:
    # The first round on a new place (both claim it and create the tables), the next ones on
    # a warehouse, until two writers overlapped there.
    pii.load_key(lambda note: None)  # made now: its note on stderr would come with a loss
    expected: set[str] = set()
    overlapped = []  # the rounds in which one writer lost
    for round_no in range(6):
        # Each file: sessions of its own, and one rejected line naming its file.
        names = [f"r{round_no}-{side}" for side in "ab"]
        batches = {
            name: [on_day(1000 * (round_no + 1) + 10 * i + k, 2 + i) for k in range(3)]
            for i, name in enumerate(names)
        }
        paths = {
            name: write(f"{name}.ndjson", ndjson([*rows, f"bad line of {name}"]))
            for name, rows in batches.items()
        }
        writers = {
            name: start("ingest", path, "-w", s3_wh.uri, "-q") for name, path in paths.items()
        }
        outcomes = {name: (p.wait(timeout=120), p.communicate()[1]) for name, p in writers.items()}
        won = [name for name, (code, _) in outcomes.items() if code == 0]
        lost = [name for name, (code, _) in outcomes.items() if code != 0]
        assert won, outcomes
        for name in won:
            expected |= {r["session_id"] for r in batches[name]}
        for name in lost:
            code, stderr = outcomes[name]
            assert code == 3, stderr
            assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
            assert "another writer committed" in stderr and "run it again" in stderr
        # Exactly the winners' sessions; the quarantine shows no loser's line.
        assert session_ids(s3_wh) == expected
        shown = {r["record"] for r in sql(s3_wh, "SELECT record FROM rejects")}
        for name in names:
            assert (f"bad line of {name}" in shown) == (name in won), (name, shown)
        # The loser, run again, lands beside the winner.
        for name in lost:
            ingest(s3_wh, paths[name])
            expected |= {r["session_id"] for r in batches[name]}
        assert session_ids(s3_wh) == expected
        rejected = sql(s3_wh, "SELECT count(*) AS n FROM rejects")[0]["n"]
        assert int(rejected) == 2 * (round_no + 1)
        if lost:
            overlapped.append(round_no)
        if overlapped[-1:] >= [1]:
            break
    assert overlapped and overlapped[-1] >= 1, f"writers overlapped in rounds {overlapped} only"

    # A loser takes its own uploads away as it fails, and its rejects rows, committed before
    # it lost, back out of the rejects table: a Delta reader sees the winners' alone. Their
    # objects stay until a vacuum takes them away, and nothing else.
    before = {name: unnamed(s3_wh, name) for name in ("sessions", "rejects")}
    assert before["sessions"] == [] and before["rejects"]
    assert len(table(s3_wh, "rejects").to_pyarrow_table()) == int(rejected)
    vacuumed = run_cli("vacuum", "-w", s3_wh.uri, "--retain", "0", "--force")
    assert vacuumed.returncode == 0, vacuumed.stderr
    assert {name: unnamed(s3_wh, name) for name in before} == {"sessions": [], "rejects": []}
    assert len(table(s3_wh, "rejects").to_pyarrow_table()) == int(rejected)
    assert session_ids(s3_wh) == expected


def unnamed(wh: S3Warehouse, name: str) -> list[str]:
    """The Parquet objects of a table that its current version does not name."""
    named = pa.table(table(wh, name).get_add_actions(flatten=True))["path"].to_pylist()
    prefix = f"{wh.bucket}/wh/{name}/"
    stored = [k[len(prefix) :] for k in wh.server.keys(prefix) if k.endswith(".parquet")]
    return sorted(set(stored) - set(named))


# --- kills ----------------------------------------------------------------------------------

KILL_SESSIONS = 10_000
KILLS = 4


@pytest.fixture(scope="module")
def kill_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_export(tmp_path_factory.mktemp("s3-kill") / "big.ndjson", KILL_SESSIONS, 5)


def copy_prefix(server: s3.S3Server, source: str, target: str) -> None:
    """A server-side copy of every object below `source` to `target` (a warehouse copy: Delta
    paths are relative)."""
    fs = server.filesystem()
    for key in server.keys(source):
        fs.copy_file(key, target + key[len(source) :])


def state(wh: S3Warehouse) -> tuple[int, int]:
    """(sessions, distinct session keys) as deltalake reads the current version."""
    keys = table(wh).to_pyarrow_table(columns=["session_key"])["session_key"]
    return len(keys), len(set(keys.to_pylist()))


def test_sigkill_mid_ingest_leaves_before_or_after(
    s3_wh: S3Warehouse, write: Write, kill_export: Path
) -> None:
    before_wh = s3_wh
    ingest(before_wh, write("first.ndjson", ndjson(FIRST)))
    before = state(before_wh)
    after = (before[0] + KILL_SESSIONS, before[1] + KILL_SESSIONS)
    places = [
        S3Warehouse(s3_wh.server, s3_wh.bucket, f"s3://{s3_wh.bucket}/kill{i}")
        for i in range(KILLS + 1)
    ]
    for place in places:
        copy_prefix(s3_wh.server, f"{s3_wh.bucket}/wh", place.uri[len("s3://") :])

    # How long a whole ingest takes here, to spread the kills over it and past it.
    timing = places.pop()
    started = time.monotonic()
    ingest(timing, kill_export)
    duration = time.monotonic() - started
    assert state(timing) == after

    outcomes = []
    for i, place in enumerate(places):
        process = start("ingest", kill_export, "-w", place.uri, "-q")
        # From early in the run to well past its commit (a loaded machine runs it slower).
        time.sleep(duration * (0.1 + 1.4 * i / (KILLS - 1)))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        killed = f"{tempfile.gettempdir()}/sessions-*-pid{process.pid}-*"
        seen = state(place)
        assert seen in (before, after), (i, seen)
        outcomes.append(seen == after)
        # The next run finishes the work, exactly once.
        ingest(place, kill_export)
        assert state(place) == after
        assert glob.glob(killed) == []  # its temporary folder: removed by the next run
    # The kills landed both before and after the commit.
    assert not all(outcomes) and any(outcomes), outcomes


# --- a place that cannot be used ------------------------------------------------------------


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 3) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert s3.SECRET_KEY not in result.stderr + result.stdout
    return result.stderr


def test_a_bad_endpoint_is_one_line(
    s3_wh: S3Warehouse, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3.free_port()}")
    export = write("a.ndjson", ndjson(FIRST))
    message = one_line_error(run_cli("ingest", export, "-w", s3_wh.uri))
    assert s3_wh.uri in message


def test_a_missing_bucket_is_one_line(s3_wh: S3Warehouse, write: Write) -> None:
    export = write("a.ndjson", ndjson(FIRST))
    missing = "s3://no-such-bucket/wh"
    message = one_line_error(run_cli("ingest", export, "-w", missing))
    assert "no-such-bucket" in message and "NoSuchBucket" in message
    assert "NoSuchBucket" in one_line_error(run_cli("stats", "-w", missing))


def test_no_credentials_is_one_line_and_writes_nothing(
    s3_wh: S3Warehouse, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    export = write("a.ndjson", ndjson(FIRST))
    message = one_line_error(run_cli("ingest", export, "-w", s3_wh.uri))
    assert "credentials" in message
    assert s3_wh.server.keys(s3_wh.bucket) == []
    assert "credentials" in one_line_error(run_cli("stats", "-w", s3_wh.uri))


def test_credentials_in_the_uri_are_refused_unshown(s3_wh: S3Warehouse, write: Write) -> None:
    export = write("a.ndjson", ndjson(FIRST))
    uri = f"s3://AKIDEXAMPLE:{s3.SECRET_KEY}@{s3_wh.bucket}/wh"
    message = one_line_error(run_cli("ingest", export, "-w", uri))
    assert "AWS_" in message
    assert s3_wh.server.keys(s3_wh.bucket) == []
