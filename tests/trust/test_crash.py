"""Kill an ingest anywhere: the dataset reads as before or after it, and the next run
completes the work with exact counts."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from pipeline.store import database, location, lock
from tests.conftest import ndjson, run_cli, session, start, tree
from tests.trust.conftest import BIG_SESSIONS, leftovers, state

# Kill points spread from early in the run to past its commit (each one a whole ingest after
# it: 14 rather than 20 kept `make test` under 15 minutes).
KILLS = 14


def views_count(wh: Path) -> int:
    con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
    try:
        return int(con.sql("select count(*) from sessions").fetchall()[0][0])
    finally:
        con.close()


def test_sigkill_at_points_across_an_ingest(
    big_export: Path, tmp_path: Path, write: Callable[[str, bytes], Path]
) -> None:
    first = write("first.ndjson", ndjson([session(n) for n in range(50)]))
    before_dir = tmp_path / "before"
    assert run_cli("ingest", first, "-w", before_dir, "-q").returncode == 0
    before = state(before_dir)
    after = (50 + BIG_SESSIONS, 50 + BIG_SESSIONS)

    # How long a whole ingest takes here, to spread the kills over it and a little past it.
    timing = tmp_path / "timing"
    shutil.copytree(before_dir, timing, symlinks=True)
    started = time.monotonic()
    assert run_cli("ingest", big_export, "-w", timing, "-q").returncode == 0
    duration = time.monotonic() - started
    assert state(timing) == after

    outcomes = []
    for i in range(KILLS):
        wh = tmp_path / f"kill{i}"
        shutil.copytree(before_dir, wh, symlinks=True)
        database.refresh(
            location.of(wh)
        )  # its views name the files of the folder they were built in
        process = start("ingest", big_export, "-w", wh, "-q")
        time.sleep(duration * (0.05 + 1.05 * i / (KILLS - 1)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen = state(wh)
        assert seen in (before, after), (i, seen)
        outcomes.append(seen == after)
        # The views file reads a whole version: the table's, or (killed between the commit
        # and its rebuild) the one before, until the next command rebuilds it.
        assert views_count(wh) in (seen[0], before[0]), i
        database.refresh(location.of(wh))  # as any command does
        assert views_count(wh) == seen[0]
        # The next run finishes the work, exactly once.
        result = run_cli("ingest", big_export, "-w", wh, "--json")
        assert result.returncode == 0, result.stderr
        assert state(wh) == after
        assert leftovers(wh) == []
        shutil.rmtree(wh)
    # The kills landed both before and after the commit.
    assert not all(outcomes) and any(outcomes)


def test_sigterm_stops_cleanly_and_changes_nothing(
    big_export: Path, tmp_path: Path, write: Callable[[str, bytes], Path]
) -> None:
    wh = tmp_path / "wh"
    assert (
        run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", wh, "-q").returncode == 0
    )
    before = tree(wh)
    stops = [(signal.SIGTERM, 143, delay) for delay in (0.0, 0.4, 0.8)]
    stops += [(signal.SIGINT, 130, delay) for delay in (0.2, 0.6)]
    for signal_number, code, delay in stops:
        process = start("ingest", big_export, "-w", wh)
        while not list((wh / ".staging").glob("*")):  # the ingest has begun its work
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == code
        name = signal.Signals(signal_number).name
        assert stderr == f"error: stopped by {name}; the warehouse is as it was\n"
        assert tree(wh) == before


def test_a_second_ingest_waits_for_none_and_says_why(
    big_export: Path, tmp_path: Path, write: Callable[[str, bytes], Path]
) -> None:
    wh = tmp_path / "wh"
    small = write("small.ndjson", ndjson([session(n) for n in range(10)]))
    first = start("ingest", big_export, "-w", wh, "-q")
    time.sleep(0.8)
    second = run_cli("ingest", small, "-w", wh)
    assert second.returncode == 3
    assert "another command, an ingest (pid " in second.stderr and second.stderr.count("\n") == 1
    assert first.wait(timeout=120) == 0
    # Nothing was lost: the second ingest, run again, lands beside the first.
    assert run_cli("ingest", small, "-w", wh, "-q").returncode == 0
    assert state(wh) == (BIG_SESSIONS + 10, BIG_SESSIONS + 10)


def test_a_killed_ingest_does_not_leave_the_lock_stuck(
    big_export: Path, tmp_path: Path, write: Callable[[str, bytes], Path]
) -> None:
    wh = tmp_path / "wh"
    process = start("ingest", big_export, "-w", wh, "-q")
    time.sleep(0.8)
    process.kill()
    process.wait()
    assert (
        run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", wh, "-q").returncode == 0
    )


def test_a_command_refused_by_the_lock_names_what_holds_it(
    tmp_path: Path, write: Callable[[str, bytes], Path]
) -> None:
    wh = tmp_path / "wh"
    small = write("small.ndjson", ndjson([session(n) for n in range(10)]))
    assert run_cli("ingest", small, "-w", wh, "-q").returncode == 0
    holders = {
        "a maintenance command": ("sessions vacuum", "another command, sessions vacuum (pid "),
        "a migration": ("a migration", "another command, a migration (pid "),
        # Not what a release of ours writes: not shown.
        "a stranger": ("rm -rf / (pid 1)", "another command is running"),
    }
    for doing, said in holders.values():
        with lock.held(location.of(wh), doing=doing):
            refused = [run_cli(*args, "-w", wh) for args in (("ingest", small), ("optimize",))]
        for result in refused:
            assert result.returncode == 3
            assert said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    # What a holder wrote stays in the lock file after it: a command that finds the lock free
    # takes it all the same.
    assert run_cli("ingest", write("more.ndjson", ndjson([session(99)])), "-w", wh).returncode == 0
