"""`sessions migrate` on a warehouse built by the previous release (the snapshot layout):
every session, reject and the manifest kept, the same figures, and a conversion killed at
any point finished by the next run.

The fixture `snapshot-warehouse.tar.gz` holds `wh/` (two ingests, the snapshot layout, with
its links), the exports it was built from in `ex/`, and `stats_before.csv`, the output of
`sessions stats --format csv` on it before any conversion. Its callers were pseudonymised
with the key below.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable

from pipeline import views
from schemas import STORED_FIELDS
from tests.conftest import SESSIONS, ndjson, run_cli, same_csv, session

FIXTURE = Path(__file__).parent / "snapshot-warehouse.tar.gz"
KEY = "0123456789abcdef0123456789abcdef0123"
RUNS = ["20261129T220319059019Z-75fc2c06", "20261129T220320518992Z-5a253a78"]

COLUMNS = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
SESSION_DIGESTS = f"SELECT session_key, md5(CAST(ROW({COLUMNS}) AS VARCHAR)) FROM {{}} ORDER BY 1"
# The rejects as the previous release stored them (no run_id: one file per run).
REJECT_COLUMNS = ", ".join(f'"{n}"' for n, _ in views.REJECT_COLUMNS if n != "run_id")
REJECT_ROWS = f"SELECT {REJECT_COLUMNS}, run_id FROM {{}} ORDER BY ALL"


@pytest.fixture(autouse=True)
def fixture_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_PII_KEY", KEY)


def extract(into: Path) -> Path:
    """The fixture, links and all, under `into`; its `wh`."""
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(into, filter="tar")  # keeps `current` and the other links
    wh = into / "wh"
    assert (wh / "current").is_symlink()
    return wh


def old_sessions(wh: Path) -> list[tuple[str, str]]:
    """The sessions of the current snapshot, read from its Parquet files before migrating."""
    files = sorted((wh / "current" / "sessions").glob("date=*/*.parquet"))
    assert files
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    source = f"read_parquet({[str(f) for f in files]}, hive_partitioning = false)"
    return [(str(k), str(d)) for k, d in con.sql(SESSION_DIGESTS.format(source)).fetchall()]


def old_rejects(wh: Path) -> list[tuple[Any, ...]]:
    """The current snapshot's rejects, each file's rows with the run its name gives."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    parts = []
    for path in sorted((wh / "current" / "rejects").glob("ingest-*.parquet")):
        run = path.stem.removeprefix("ingest-")
        parts.append(
            f"SELECT *, '{run}' AS run_id FROM read_parquet('{path}', hive_partitioning = false)"
        )
    assert parts
    return con.sql(REJECT_ROWS.format(f"({' UNION ALL '.join(parts)})")).fetchall()


def new_sessions(wh: Path) -> list[tuple[str, str]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("delta_sessions", DeltaTable(str(wh / "sessions")).to_pyarrow_table())
    return [
        (str(k), str(d)) for k, d in con.sql(SESSION_DIGESTS.format("delta_sessions")).fetchall()
    ]


def new_rejects(wh: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("delta_rejects", DeltaTable(str(wh / "rejects")).to_pyarrow_table())
    return con.sql(REJECT_ROWS.format("delta_rejects")).fetchall()


def stats(wh: Path) -> str:
    result = run_cli("stats", "-w", wh, "--format", "csv")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def before(tmp_path: Path) -> dict[str, Any]:
    """What the old warehouse holds, read before anything converts it."""
    wh = extract(tmp_path / "reference")
    return {
        "sessions": old_sessions(wh),
        "rejects": old_rejects(wh),
        "stats": (wh.parent / "stats_before.csv").read_text(),
    }


def assert_kept(wh: Path, before: dict[str, Any]) -> None:
    """Converted, and nothing lost: sessions, rejects, figures, the manifest's runs."""
    assert not (wh / ".snapshots").exists() and not (wh / "current").exists()
    assert not (wh / ".migrating").exists()
    assert json.loads((wh / ".sessions-warehouse").read_text())["version"] == 2
    assert new_sessions(wh) == before["sessions"]
    assert new_rejects(wh) == before["rejects"]
    assert same_csv(stats(wh), before["stats"])
    ingests = [
        json.loads(p.read_text())["ingests"] for p in sorted((wh / "manifests").glob("*.json"))
    ]
    assert [[i["run_id"] for i in found] for found in ingests] == [RUNS]


def test_migrate_keeps_every_session_reject_figure_and_the_manifest(
    tmp_path: Path, before: dict[str, Any]
) -> None:
    wh = extract(tmp_path)
    assert len(before["sessions"]) == 196 and len(before["rejects"]) == 4
    result = run_cli("migrate", "-w", wh)
    assert result.returncode == 0, result.stderr
    assert "converted" in result.stdout
    assert_kept(wh, before)
    # The commands read it; the CLI agrees with deltalake.
    out = run_cli("sql", "SELECT count(*) FROM sessions", "-w", wh, "--format", "csv").stdout
    assert out.splitlines()[-1] == "196"
    # The manifest came across: every export was ingested already, the redelivery included.
    # (The fixture's ingests read 01, 03 and 07, then 06; the other exports never.)
    ex = tmp_path / "ex"
    for exports in (
        [ex / "06_redelivered_durations.ndjson"],
        [ex / "01_sessions.ndjson", ex / "03_sessions.json", ex / "07_with_problems.ndjson"],
    ):
        result = run_cli("ingest", *exports, "-w", wh, "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert not report["committed"] and len(report["files_skipped"]) == len(exports)
        assert {s["ingested_by"] for s in report["files_skipped"]} <= set(RUNS)
    assert new_sessions(wh) == before["sessions"]
    # Again: nothing to convert.
    again = run_cli("migrate", "-w", wh)
    assert again.returncode == 0 and "nothing to convert" in again.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["stats"],
        ["sql", "SELECT 1"],
        ["report", "--out", "r.html"],
        ["history"],
        ["check"],
        ["optimize"],
        ["vacuum"],
        ["rebuild"],
    ],
    ids=lambda a: a[0],
)
def test_reading_commands_on_an_old_warehouse_say_to_migrate(
    args: list[str], tmp_path: Path
) -> None:
    wh = extract(tmp_path)
    listing = sorted(str(p.relative_to(wh)) for p in wh.rglob("*"))
    result = run_cli(*args, "-w", wh, cwd=tmp_path)
    assert result.returncode == 3, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sessions migrate" in lines[0], result.stderr
    # Told, not converted: they only read.
    assert sorted(str(p.relative_to(wh)) for p in wh.rglob("*")) == listing


def test_the_first_ingest_converts_by_itself(tmp_path: Path, before: dict[str, Any]) -> None:
    wh = extract(tmp_path)
    result = run_cli("ingest", tmp_path / "ex" / "06_redelivered_durations.ndjson", "-w", wh)
    assert result.returncode == 0, result.stderr
    assert "Skipped" in result.stdout
    assert_kept(wh, before)


def test_a_new_export_into_an_old_warehouse_is_added_after_conversion(
    tmp_path: Path, before: dict[str, Any]
) -> None:
    wh = extract(tmp_path)
    new = tmp_path / "new.ndjson"
    new.write_bytes(ndjson([session(1000, session_id="brand-new")]))
    result = run_cli("ingest", new, "-w", wh, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sessions_new"] == 1
    kept = {k: d for k, d in new_sessions(wh)}
    assert len(kept) == len(before["sessions"]) + 1
    assert all(kept[k] == d for k, d in before["sessions"])


# Every step of a conversion that changes the folder, counted; the process dies (as by
# SIGKILL: no cleanup, no atexit) just before step KILL_AT. 0: run whole, naming each step.
INJECT = """
import os, pathlib, shutil, sys
from pipeline.store import location, migrate

kill_at, steps = int(sys.argv[1]), [0]

def step(name, func):
    def wrapped(*args, **kwargs):
        steps[0] += 1
        if kill_at == 0:
            print(name, file=sys.stderr)
        if steps[0] == kill_at:
            os._exit(137)
        return func(*args, **kwargs)
    return wrapped

os.link = step("link", os.link)
os.replace = step("replace", os.replace)
shutil.rmtree = step("rmtree", shutil.rmtree)
pathlib.Path.unlink = step("unlink", pathlib.Path.unlink)
pathlib.Path.touch = step("touch", pathlib.Path.touch)
pathlib.Path.mkdir = step("mkdir", pathlib.Path.mkdir)
location.write_marker = step("marker", location.write_marker)
migrate.create_table_with_add_actions = step("create", migrate.create_table_with_add_actions)
migrate._rewrite_rejects = step("rejects", migrate._rewrite_rejects)

from pipeline.cli import main
main(["migrate", "-w", sys.argv[2]])
"""


def migrate_killed_at(step: int, wh: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", INJECT, str(step), str(wh)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_a_migration_killed_at_any_step_is_finished_by_the_next_run(
    tmp_path: Path, before: dict[str, Any]
) -> None:
    counting = migrate_killed_at(0, extract(tmp_path / "count"))
    assert counting.returncode == 0, counting.stderr
    names = counting.stderr.split()
    assert "create" in names and "replace" in names
    # Each kind of step at its first and last (the commits and the swap's steps among them);
    # numbered from 1.
    points = {1 + names.index(n) for n in names} | {
        len(names) - names[::-1].index(n) for n in names
    }
    for i, point in enumerate(sorted(points)):
        wh = extract(tmp_path / f"kill{i}")
        killed = migrate_killed_at(point, wh)
        assert killed.returncode == 137, (point, killed.stderr)
        # Meanwhile a reader is told to migrate, or (killed once all was done) reads it all.
        read = run_cli("sql", "SELECT count(*) FROM sessions", "-w", wh, "--format", "csv")
        if read.returncode == 0:
            assert read.stdout.splitlines()[-1] == str(len(before["sessions"])), point
        else:
            assert read.returncode == 3 and "sessions migrate" in read.stderr, (point, read.stderr)
        # The next run (every other one an ingest, which converts first) finishes it.
        if i % 2:
            export = tmp_path / "count" / "ex" / "06_redelivered_durations.ndjson"
            result = run_cli("ingest", export, "-w", wh)
        else:
            result = run_cli("migrate", "-w", wh)
        assert result.returncode == 0, (point, result.stderr)
        assert_kept(wh, before)


def test_a_migration_killed_by_sigkill_is_finished_by_the_next_run(
    tmp_path: Path, before: dict[str, Any]
) -> None:
    started = time.monotonic()
    assert run_cli("migrate", "-w", extract(tmp_path / "timing")).returncode == 0
    duration = time.monotonic() - started
    for i in range(3):
        wh = extract(tmp_path / f"kill{i}")
        process = subprocess.Popen(
            [str(SESSIONS), "migrate", "-w", str(wh)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(duration * (0.5 + 0.4 * i))
        process.send_signal(signal.SIGKILL)
        process.wait()
        result = run_cli("migrate", "-w", wh)
        assert result.returncode == 0, result.stderr
        assert_kept(wh, before)


def test_a_conversion_that_cannot_write_says_so_and_loses_nothing(
    tmp_path: Path, before: dict[str, Any]
) -> None:
    wh = extract(tmp_path)
    (wh / ".migrating").write_text("in the way")  # where the conversion builds its tables
    for args in (["migrate"], ["ingest", tmp_path / "ex" / "06_redelivered_durations.ndjson"]):
        result = run_cli(*args, "-w", wh)
        assert result.returncode == 3, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot convert" in lines[0], result.stderr
        assert old_sessions(wh) == before["sessions"]
    (wh / ".migrating").unlink()
    assert run_cli("migrate", "-w", wh).returncode == 0
    assert_kept(wh, before)


@pytest.mark.parametrize("damage", ["a stray .migrating folder", "a marker of version 1"])
def test_a_delta_warehouse_is_never_converted_again(
    tmp_path: Path, before: dict[str, Any], damage: str
) -> None:
    # A conversion killed as it finished leaves `.migrating` without its `ready` file (or a
    # folder of that name appears); a marker may be restored from a backup: neither may make
    # the Delta tables be rebuilt from a snapshot that is gone (they held every session).
    wh = extract(tmp_path)
    assert run_cli("migrate", "-w", wh).returncode == 0
    if damage == "a stray .migrating folder":
        (wh / ".migrating").mkdir()
    else:
        (wh / ".sessions-warehouse").write_text('{"format":"sessions-warehouse","version":1}')
    out = run_cli("sql", "SELECT count(*) FROM sessions", "-w", wh, "--format", "csv")
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "196", out.stderr
    for command in (["migrate"], ["ingest", tmp_path / "ex" / "01_sessions.ndjson"]):
        result = run_cli(*command, "-w", wh)
        assert result.returncode == 0, result.stderr
        assert_kept(wh, before)
