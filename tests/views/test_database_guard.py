"""`<warehouse>/sessions.duckdb` opened where it should not answer: a copy of the warehouse no
command has run on, a database file left behind by a newer ingest. A client gets an error,
never rows of another warehouse or of an older version, in a current and a DuckDB 1.0
client alike."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ndjson, run_cli, session

ROOT = Path(__file__).parents[2]
DUCKDB1 = ROOT / ".venv" / "duckdb1" / "bin" / "python"
CLIENTS = {"current": Path(sys.executable), "duckdb 1.0": DUCKDB1}
RELATIONS = ["sessions", "rejects", "agent_duration_stats", "prompt_version_changes"]

# For each relation: its row count, or the error the client got.
ASK = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
found = {}
for name in sys.argv[2:]:
    try:
        found[name] = con.sql(f"select count(*) from {name}").fetchall()[0][0]
    except duckdb.Error as exc:
        found[name] = "error: " + str(exc)
print(json.dumps(found))
"""

Write = Callable[[str, bytes], Path]


def ask(client: Path, database: Path) -> dict[str, object]:
    assert client.exists(), "run `make test`: it installs the DuckDB 1.0 client"
    result = subprocess.run(
        [str(client), "-c", ASK, str(database), *RELATIONS],
        capture_output=True, text=True, check=False, cwd=database.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def ingest(wh: Path, path: Path) -> None:
    result = run_cli("ingest", path, "-w", wh, "-q")
    assert result.returncode == 0, result.stderr


def refuses(found: dict[str, object], *says: str) -> None:
    """Every relation answered with an error that says one of `says`."""
    for name, answer in found.items():
        assert isinstance(answer, str) and answer.startswith("error: "), (name, answer)
        assert any(s in answer for s in says), (name, answer)


# Where the files the views name are gone, DuckDB fails as it binds them, before the
# guard's own message: an error all the same, naming the place the database was built for.
GONE = "No files found"


@pytest.fixture
def warehouse(write: Write, wh: Path) -> Path:
    rows = [session(n) for n in range(20)] + [session(99, duration=-1)]
    ingest(wh, write("a.ndjson", ndjson(rows)))
    return wh


@pytest.mark.parametrize("client", CLIENTS)
def test_a_copy_no_command_ran_on_refuses_to_answer(
    client: str, warehouse: Path, write: Write, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(warehouse), str(copy)], check=True)
    # The original changes: a new ingest; the copy's database is not rebuilt.
    ingest(warehouse, write("b.ndjson", ndjson([session(n) for n in range(20, 30)])))
    refuses(ask(CLIENTS[client], copy / "sessions.duckdb"), "not where it is now")
    # Even with the original gone (its files would be the only ones to read).
    shutil.rmtree(warehouse)
    refuses(ask(CLIENTS[client], copy / "sessions.duckdb"), "not where it is now", GONE)
    # A command on the copy rebuilds it: then it answers, from the copy's files.
    assert run_cli("stats", "-w", copy, "--format", "csv").returncode == 0
    assert ask(CLIENTS[client], copy / "sessions.duckdb")["sessions"] == 20


@pytest.mark.parametrize("client", CLIENTS)
def test_a_database_file_older_than_the_warehouse_reads_its_own_version_whole(
    client: str, warehouse: Path, write: Write, tmp_path: Path
) -> None:
    saved = tmp_path / "saved.duckdb"
    shutil.copyfile(warehouse / "sessions.duckdb", saved)
    before = ask(CLIENTS[client], warehouse / "sessions.duckdb")
    ingest(warehouse, write("b.ndjson", ndjson([session(n) for n in range(20, 25)])))
    assert ask(CLIENTS[client], warehouse / "sessions.duckdb")["sessions"] == 25
    # The old file put back in place (a restore, a sync that lags, or a rebuild not yet done
    # after a commit): it reads the version it was built for, whole (that version's files stay
    # until vacuum), never a mix; any sessions command brings it up to date.
    shutil.copyfile(saved, warehouse / "sessions.duckdb")
    assert ask(CLIENTS[client], warehouse / "sessions.duckdb") == before
    assert run_cli("check", "-w", warehouse).returncode == 0
    assert ask(CLIENTS[client], warehouse / "sessions.duckdb")["sessions"] == 25
    # The file alone, elsewhere: not the warehouse's database any more.
    refuses(ask(CLIENTS[client], saved), "not where it is now")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_moved_warehouse_answers_after_any_command(
    client: str, warehouse: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    warehouse.rename(moved)
    refuses(ask(CLIENTS[client], moved / "sessions.duckdb"), GONE)
    assert run_cli("sql", "SELECT 1", "-w", moved).returncode == 0
    found = ask(CLIENTS[client], moved / "sessions.duckdb")
    assert found == {
        "sessions": 20,
        "rejects": 1,
        "agent_duration_stats": 3,
        "prompt_version_changes": 2,
    }
