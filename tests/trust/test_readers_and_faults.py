"""Readers during ingests, and the faults a batch job meets: each a clear line, nothing lost."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
from deltalake import DeltaTable

from tests.conftest import SESSIONS, ndjson, run_cli, session, tree
from tests.trust.conftest import BIG_SESSIONS, state

Write = Callable[[str, bytes], Path]


def test_readers_see_whole_ingests_only(big_export: Path, tmp_path: Path, write: Write) -> None:
    wh = tmp_path / "wh"
    assert (
        run_cli(
            "ingest", write("a.ndjson", ndjson([session(n) for n in range(10)])), "-w", wh
        ).returncode
        == 0
    )
    valid = {10, 10 + BIG_SESSIONS, 20 + BIG_SESSIONS}
    seen: list[int] = []
    errors: list[str] = []
    done = threading.Event()

    def read_loop() -> None:
        while not done.is_set():
            try:
                con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
                (count,) = con.sql("select count(*) from sessions").fetchall()[0]
                con.sql("select * from agent_duration_stats").fetchall()
                con.close()
                seen.append(count)
                # The folder, read as the README says: the link resolved once.
                seen.append(state(Path(os.path.realpath(wh / "sessions")).parent)[0])
            except Exception as exc:  # every failure is a finding
                errors.append(repr(exc))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        assert run_cli("ingest", big_export, "-w", wh, "-q").returncode == 0
        more = write("b.ndjson", ndjson([session(n) for n in range(10, 20)]))
        assert run_cli("ingest", more, "-w", wh, "-q").returncode == 0
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert len(seen) > 10 and set(seen) <= valid and max(seen) == 20 + BIG_SESSIONS


def test_a_corrupt_parquet_file_is_named_and_nothing_changes(write: Write, wh: Path) -> None:
    assert (
        run_cli(
            "ingest", write("a.ndjson", ndjson([session(n) for n in range(5)])), "-w", wh
        ).returncode
        == 0
    )
    victim = sorted((wh / "sessions").glob("*/*.parquet"))[0].resolve()
    victim.write_bytes(b"not parquet at all")
    before = tree(wh)
    result = run_cli("ingest", write("b.ndjson", ndjson([session(9)])), "-w", wh)
    assert result.returncode == 3 and result.stderr.count("\n") == 1
    assert str(victim) in result.stderr
    assert tree(wh) == before


def without_root_overrides() -> None:
    """Drop the capabilities that let root ignore file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER), so that a read-only warehouse is read-only for the CLI."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl")


def chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_a_read_only_warehouse_is_an_error_and_nothing_changes(write: Write, wh: Path) -> None:
    assert (
        run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", wh, "-q").returncode == 0
    )
    before = tree(wh)
    chmod_tree(wh, writable=False)
    try:
        result = subprocess.run(
            [str(SESSIONS), "ingest", str(write("b.ndjson", ndjson([session(2)]))), "-w", str(wh)],
            capture_output=True, text=True, preexec_fn=without_root_overrides, check=False,
        )  # fmt: skip
    finally:
        chmod_tree(wh, writable=True)
    assert result.returncode == 3 and result.stderr.count("\n") == 1
    assert "Permission denied" in result.stderr and str(wh) in result.stderr
    assert tree(wh) == before


def test_a_full_disk_is_an_error_and_nothing_changes(
    big_export: Path, tmp_path: Path, write: Write
) -> None:
    wh = tmp_path / "wh"
    assert (
        run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", wh, "-q").returncode == 0
    )
    before = tree(wh)

    def small_disk() -> None:
        # Writes past 200 kB fail as they do on a full disk (EFBIG instead of ENOSPC).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    result = subprocess.run(
        [str(SESSIONS), "ingest", str(big_export), "-w", str(wh)],
        capture_output=True, text=True, preexec_fn=small_disk, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "File too large" in result.stderr
    assert tree(wh) == before
    assert state(wh) == (1, 1)


def test_an_export_the_user_may_not_read(write: Write, wh: Path) -> None:
    export = write("secret.ndjson", ndjson([session(1)]))
    export.chmod(0o000)
    result = subprocess.run(
        [str(SESSIONS), "ingest", str(export), "-w", str(wh)],
        capture_output=True, text=True, preexec_fn=without_root_overrides, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"error: {export}: cannot open: Permission denied\n"
    assert not (wh / "sessions").exists()


def test_a_failed_sessions_commit_takes_its_rejects_back(write: Write, wh: Path) -> None:
    # The rejects commit comes first; when the sessions commit then fails, a Delta reader of
    # the rejects table would count rows of a run that never was, until the next ingest.
    first = write("a.ndjson", ndjson([session(1), "not json"]))
    assert run_cli("ingest", first, "-w", wh, "-q").returncode == 0
    log = wh / "sessions" / "_delta_log"
    log.chmod(0o555)
    try:
        result = subprocess.run(
            [str(SESSIONS), "ingest", str(write("b.ndjson", ndjson([session(2), "[1"]))),
             "-w", str(wh)],
            capture_output=True, text=True, preexec_fn=without_root_overrides, check=False,
        )  # fmt: skip
    finally:
        log.chmod(0o755)
    assert result.returncode == 3 and "Permission denied" in result.stderr, result.stderr
    assert DeltaTable(str(wh / "rejects")).to_pyarrow_table().num_rows == 1
    assert DeltaTable(str(wh / "sessions")).to_pyarrow_table().num_rows == 1
    # The same ingest, once the log may be written: whole, its rejects once.
    assert run_cli("ingest", wh.parent / "exports" / "b.ndjson", "-w", wh).returncode == 0
    assert DeltaTable(str(wh / "rejects")).to_pyarrow_table().num_rows == 2
    assert DeltaTable(str(wh / "sessions")).to_pyarrow_table().num_rows == 2


def test_a_commit_that_fails_after_it_is_written_keeps_its_rejects(write: Write, wh: Path) -> None:
    # delta-rs writes the commit, then a checkpoint: when only the checkpoint fails, the run
    # counts, and its rejects must stay.
    first = write("a.ndjson", ndjson([session(1), "not json"]))
    assert run_cli("ingest", first, "-w", wh, "-q").returncode == 0
    table = DeltaTable(str(wh / "sessions"))
    table.alter.set_table_properties({"delta.checkpointInterval": "1"})
    following = table.version() + 1
    (wh / "sessions" / "_delta_log" / f"{following:020d}.checkpoint.parquet").mkdir()
    result = run_cli("ingest", write("b.ndjson", ndjson([session(2), "[1"])), "-w", wh)
    assert DeltaTable(str(wh / "sessions")).version() == following, result.stderr
    assert DeltaTable(str(wh / "rejects")).to_pyarrow_table().num_rows == 2, result.stderr
    check = run_cli("check", "-w", wh)
    assert check.returncode == 0 and "2 rejected rows, from 2 ingest(s)" in check.stdout
