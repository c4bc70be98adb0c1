"""`sessions check` passes a sound warehouse and names what is wrong with a broken one."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from tests.conftest import ndjson, run_cli, session

Write = Callable[[str, bytes], Path]


def test_a_sound_warehouse(write: Write, wh: Path) -> None:
    run_cli("ingest", write("a.ndjson", ndjson([session(n) for n in range(30)] + ["x"])), "-w", wh)
    result = run_cli("check", "-w", wh)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {wh} holds 30 sessions in 28 files, 1 rejected rows")


def test_a_corrupt_file_and_a_duplicated_session(write: Write, wh: Path) -> None:
    run_cli("ingest", write("a.ndjson", ndjson([session(n) for n in range(30)])), "-w", wh)
    table = DeltaTable(str(wh / "sessions"))
    files = sorted(Path(uri) for uri in table.file_uris())
    corrupt = files[0]
    corrupt.write_bytes(b"garbage")
    # Another writer (a buggy tool) commits a copy of one day's file into another day: its
    # sessions are then stored twice, and under a date that is not theirs.
    copy = files[2].parent / "copy.parquet"
    pq.write_table(pq.read_table(files[1]), copy)
    day = files[2].parent.name.split("=", 1)[1]
    add = AddAction(
        f"{files[2].parent.name}/copy.parquet", copy.stat().st_size, {"date": day}, 0, True, "{}"
    )
    table.create_write_transaction([add], "append", table.schema(), partition_by=["date"])
    result = run_cli("check", "-w", wh)
    assert result.returncode == 3
    assert f"{corrupt}: cannot be read" in result.stderr
    assert "is stored 2 times" in result.stderr and "under another date" in result.stderr
    assert "restore the file from a backup" in result.stderr
    days = sorted(p.parent.name.split("=", 1)[1] for p in (files[1], copy))
    assert f"'s1' is stored 2 times, on {', '.join(days)}" in result.stderr
    # corrupt, two sessions stored twice, misplaced, and the views that cannot read the file
    assert result.stderr.splitlines()[-1] == f"error: 5 problem(s) found in {wh}"


def test_not_a_warehouse(tmp_path: Path) -> None:
    result = run_cli("check", "-w", tmp_path)
    assert result.returncode == 3 and "is not a warehouse" in result.stderr


def test_a_check_while_ingests_commit_reads_one_snapshot(tmp_path: Path, write: Write) -> None:
    """Each check reads one snapshot whole, whatever commits meanwhile: every run passes."""
    wh = tmp_path / "wh"
    first = write("a.ndjson", ndjson([session(n) for n in range(10)]))
    assert run_cli("ingest", first, "-w", wh, "-q").returncode == 0
    results: list[subprocess.CompletedProcess[str]] = []
    done = threading.Event()

    def check_loop() -> None:
        while not done.is_set():
            results.append(run_cli("check", "-w", wh))

    checker = threading.Thread(target=check_loop)
    checker.start()
    try:
        # Each ingest adds a file to every date and updates sessions, so that each commit
        # changes files the check reads.
        for batch in range(1, 7):
            records = [session(n, duration=batch + n) for n in range(5 * batch, 5 * batch + 60)]
            more = write(f"b{batch}.ndjson", ndjson(records))
            assert run_cli("ingest", more, "-w", wh, "-q").returncode == 0
    finally:
        done.set()
        checker.join()
    failed = [(r.returncode, r.stdout + r.stderr) for r in results if r.returncode != 0]
    assert failed == [], failed[0][1][:2000] if failed else ""
    assert len(results) >= 3
    assert all(r.stdout.startswith(f"OK: {wh} holds ") for r in results)


def _two_ingests(write: Write, wh: Path) -> tuple[Path, Path]:
    """A warehouse of two ingests (each file's sessions on days of their own), and its two
    manifests, oldest first."""
    for name, days in (("a.ndjson", range(0, 10)), ("b.ndjson", range(10, 20))):
        rows = [session(n, timestamp=f"2026-10-{1 + n:02d}T12:00:00Z") for n in days]
        assert run_cli("ingest", write(name, ndjson([*rows, "x"])), "-w", wh).returncode == 0
    first, second = sorted((wh / "manifests").glob("*.json"))
    return first, second


def test_a_manifest_of_another_shape_is_exit_3_in_every_command(write: Write, wh: Path) -> None:
    _, latest = _two_ingests(write, wh)
    for damaged in ("[]", "null", '{"ingests": [{}]}', '{"ingests": [5]}', '{"ingests": null}',
                    '{"ingests": [{"run_id": "r", "finished": "t", "files": [7]}]}'):  # fmt: skip
        latest.write_text(damaged)
        for command in (["history"], ["check"], ["stats"], ["vacuum"]):
            result = run_cli(*command, "-w", wh)
            assert result.returncode == 3, (damaged, command, result.stderr)
            assert f"the manifest {wh}/manifests/{latest.name} is damaged" in result.stderr


def test_an_older_manifest_in_place_of_the_latest_loses_no_file(write: Write, wh: Path) -> None:
    # A restore from an older backup: the latest manifest says less than the log. Nothing the
    # log names may be taken for a killed run's leftover and deleted.
    first, latest = _two_ingests(write, wh)
    before = sorted(p.relative_to(wh) for p in wh.rglob("*.parquet"))
    latest.write_bytes(first.read_bytes())
    for command in ("vacuum", "optimize"):
        run_cli(command, "-w", wh)
    after = sorted(p.relative_to(wh) for p in wh.rglob("*.parquet"))
    assert set(before) <= set(after) and latest.exists()
    assert DeltaTable(str(wh / "sessions")).to_pyarrow_table().num_rows == 20


def test_a_file_in_a_delta_log_that_is_not_a_commit_is_exit_3(write: Write, wh: Path) -> None:
    _two_ingests(write, wh)
    # A rejects file no commit named (a killed run's) makes the cleanup read the log.
    (rejects,) = list((wh / "rejects").glob("part-*.parquet"))[:1]
    stray = rejects.with_name("part-20261130T000000000000Z-deadbeef.parquet")
    stray.write_bytes(rejects.read_bytes())
    (wh / "rejects" / "_delta_log" / "notes.json").write_text("oops")
    for command in ("vacuum", "optimize"):
        result = run_cli(command, "-w", wh)
        assert result.returncode == 3, result.stderr
        assert "notes.json: Expecting value" in result.stderr
        assert "that is not one of its commits may be moved elsewhere" in result.stderr


def test_a_file_rewritten_in_place_is_found(write: Write, wh: Path) -> None:
    # Readable, with the session columns, but not the file committed: fewer sessions than the
    # version holds, and Delta readers (which trust the commit's size) fail on it.
    _two_ingests(write, wh)
    table = DeltaTable(str(wh / "sessions"))
    (first, *_) = sorted(Path(uri) for uri in table.file_uris())
    committed = first.stat().st_size
    pq.write_table(pq.read_table(first).slice(0, 0), first)
    # And a rejects file too: its rows count in the report and the views.
    (reject, *_) = sorted(Path(uri) for uri in DeltaTable(str(wh / "rejects")).file_uris())
    reject_committed = reject.stat().st_size
    pq.write_table(pq.read_table(reject).slice(0, 0), reject)
    result = run_cli("check", "-w", wh)
    assert result.returncode == 3, result.stdout
    for path, was in ((first, committed), (reject, reject_committed)):
        size = path.stat().st_size
        assert f"{path}: {size:,} bytes, where its commit says {was:,}" in result.stderr
