"""Where the warehouse lives: whatever its parents are named, only in a folder of its own, and
answering from its own files wherever it is moved or copied."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable

from pipeline import output, query
from pipeline.check import check
from pipeline.errors import InputError, WarehouseError
from pipeline.ingest import Options, ingest
from pipeline.scope import Scope
from pipeline.store.location import MARKER
from pipeline.store.maintain import rebuild
from schemas import STORED_FIELDS
from tests.conftest import ndjson, run_cli, session, tree

Write = Callable[[str, bytes], Path]


def sql(wh: Path, text: str) -> list[dict[str, Any]]:
    """The rows of `text`, run as `sessions sql` runs it, as its JSON output gives them."""
    out = io.StringIO()
    with query.sql(wh, text) as rows:
        output.write(rows.columns, rows.batches, "json", out)
    found: list[dict[str, Any]] = json.loads(out.getvalue())
    return found


def per_agent(wh: Path) -> dict[str, int]:
    """Sessions per agent, as `sessions stats` counts them."""
    table = query.stats(wh, "agent", Scope()).to_pylist()
    return {row["agent_id"]: row["session_count"] for row in table}


def count(wh: Path) -> int:
    (row,) = sql(wh, "SELECT count(*) AS n FROM sessions")
    return int(row["n"])


def problems(wh: Path) -> list[str]:
    return [str(p) for p in check(wh).problems]


def files_read(wh: Path) -> tuple[int, int]:
    """(rows, distinct keys) in the current version's files, read without Hive partitioning."""
    files = DeltaTable(str(wh / "sessions")).file_uris()
    rel = duckdb.sql(
        "SELECT count(*), count(DISTINCT session_key) "
        f"FROM read_parquet({files!r}, hive_partitioning = false)"
    )
    return rel.fetchall()[0]  # type: ignore[return-value]


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 3) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    return result.stderr


# Folders named as DuckDB names a Hive partition, above the warehouse: a key of the dataset's
# (date), columns of the sessions (agent_id, is_test, channel_manager_type, session_key), and
# a key that is no column at all.
PARENTS = [
    "date=1999-01-01/agent_id=X",
    "agent_id=X",
    "date=1999-01-01",
    "is_test=true/channel_manager_type=fax",
    "session_key=k",
    "region=eu/year=2020",
]


@pytest.mark.parametrize("parents", PARENTS)
def test_folders_above_the_warehouse_never_become_columns(
    write: Write, tmp_path: Path, parents: str
) -> None:
    wh = tmp_path / parents / "wh"
    first = [session(n) for n in range(12)]
    ingest([str(write("a.ndjson", ndjson(first)))], wh)
    # Updates (their days are rewritten from the stored files) and new sessions.
    later = [session(n, duration=100.0 + n) for n in range(6)] + [session(n) for n in (12, 13)]
    report = ingest([str(write("b.ndjson", ndjson(later)))], wh)
    assert (report.sessions_new, report.sessions_updated) == (2, 6)
    assert files_read(wh) == (14, 14)  # each session stored once
    assert per_agent(wh) == {"agent-0": 5, "agent-1": 5, "agent-2": 4}
    rows = sql(
        wh,
        "SELECT session_id, utc_date, agent_id, is_test_session, channel_manager_type "
        "FROM sessions ORDER BY session_id",
    )
    expected = {f"s{n}": session(n) for n in range(14)}
    assert len(rows) == 14
    for row in rows:
        given = expected[row["session_id"]]
        assert str(row["utc_date"]) == given["timestamp"][:10]
        assert (row["agent_id"], row["is_test_session"]) == (given["agent_id"], False)
        assert row["channel_manager_type"] == "voice_twilio_v1"
    # No folder name is a column: `date` is not one (`utc_date` is), nor `region` or `year`.
    with query.sql(wh, "SELECT * FROM sessions LIMIT 0") as rows:
        columns = {column.name for column in rows.columns}
    keys = {part.split("=")[0] for part in parents.split("/")}
    assert "utc_date" in columns
    assert not (keys - {f.name for f in STORED_FIELDS}) & columns
    assert problems(wh) == []


# Folders that are not empty and not a warehouse: each of them, some of them named as a
# warehouse names its parts.
def _notes(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine\n")


def _snapshots_and_staging(folder: Path) -> None:
    for name in (".snapshots/2024-backup/a.txt", ".staging/draft/b.txt"):
        (folder / name).parent.mkdir(parents=True)
        (folder / name).write_text("mine\n")


def _a_sessions_folder(folder: Path) -> None:
    (folder / "sessions").mkdir()
    (folder / "sessions" / "list.csv").write_text("a,b\n")


def _a_current_link(folder: Path) -> None:
    (folder / "elsewhere").mkdir()
    (folder / "current").symlink_to("elsewhere")


def _a_hidden_file(folder: Path) -> None:
    (folder / ".profile").write_text("export A=1\n")


FOREIGN = [_notes, _snapshots_and_staging, _a_sessions_folder, _a_current_link, _a_hidden_file]


@pytest.mark.parametrize("make", FOREIGN, ids=lambda f: f.__name__.strip("_"))
def test_a_folder_that_is_not_a_warehouse_is_refused_and_left_alone(
    write: Write, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    make(folder)
    before = tree(folder)
    export = write("a.ndjson", ndjson([session(1)]))
    error = one_line_error(run_cli("ingest", export, "-w", folder))
    assert f"{folder} is not empty and is not a warehouse" in error
    for read in (per_agent, count, check, rebuild):
        with pytest.raises(WarehouseError, match="is not a warehouse"):
            read(folder)
    assert tree(folder) == before and not (folder / ".lock").exists()


def test_reading_commands_on_a_folder_that_is_not_a_warehouse(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    _snapshots_and_staging(folder)
    before = tree(folder)
    out = tmp_path / "report.html"
    for command in (
        ["stats"],
        ["sql", "select 1"],
        ["check"],
        ["rebuild"],
        ["report", "--out", out],
    ):
        error = one_line_error(run_cli(*command, "-w", folder))
        assert f"{folder} is not a warehouse" in error
    assert tree(folder) == before and not out.exists()


def test_a_new_or_empty_folder_becomes_a_warehouse_marked_with_its_format(
    write: Write, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    export = write("a.ndjson", ndjson([session(1)]))
    for wh in (empty, tmp_path / "new" / "deeper"):
        result = run_cli("ingest", export, "-w", wh)
        assert result.returncode == 0, result.stderr
        assert json.loads((wh / MARKER).read_text()) == {
            "format": "sessions-warehouse",
            "version": 2,
        }
        assert count(wh) == 1


def test_a_folder_left_by_a_first_ingest_that_never_committed_is_taken(
    write: Write, tmp_path: Path
) -> None:
    # Its lock alone (killed before it marked the folder)...
    never = tmp_path / "never"
    never.mkdir()
    (never / ".lock").touch()
    ingest([str(write("c.ndjson", ndjson([session(3)])))], never)
    assert files_read(never) == (1, 1)
    # ... or, from the snapshot layout before Delta, its links and lock, nothing else.
    links = tmp_path / "links"
    links.mkdir()
    (links / ".lock").touch()
    for name in ("sessions", "rejects", "sessions.duckdb"):
        (links / name).symlink_to(f"current/{name}")
    ingest([str(write("d.ndjson", ndjson([session(4)])))], links)
    assert files_read(links) == (1, 1) and not (links / "sessions").is_symlink()


@pytest.mark.parametrize(
    "marker", ['{"format": "sessions-warehouse", "version": 3}', '{"format": "other"}', "junk"]
)
def test_a_marker_of_another_format_or_a_newer_version_is_refused(
    write: Write, tmp_path: Path, marker: str
) -> None:
    wh = tmp_path / "wh"
    ingest([str(write("a.ndjson", ndjson([session(1)])))], wh)
    (wh / MARKER).write_text(marker)
    before = tree(wh)
    export = write("b.ndjson", ndjson([session(2)]))
    one_line_error(run_cli("ingest", export, "-w", wh))
    for read in (count, check, rebuild):
        with pytest.raises(WarehouseError, match=MARKER if "junk" in marker else "warehouse"):
            read(wh)
    assert tree(wh) == before


def _cp_r(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)


def _cp_a(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def _copytree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True)


COPIES = [_cp_r, _cp_a, _copytree]


@pytest.mark.parametrize("copy", COPIES, ids=lambda f: f.__name__.strip("_"))
def test_a_copy_answers_from_its_own_files(
    write: Write, tmp_path: Path, copy: Callable[[Path, Path], None]
) -> None:
    original, copied = tmp_path / "original", tmp_path / "elsewhere" / "copy"
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(6)])))], original)
    copied.parent.mkdir()
    copy(original, copied)
    # The original changes: the copy's figures do not.
    ingest([str(write("b.ndjson", ndjson([session(n) for n in range(6, 30)])))], original)
    # Its database names the original's files: a client that opens it is refused, never
    # given the original's rows.
    con = duckdb.connect(str(copied / "sessions.duckdb"), read_only=True)
    with pytest.raises(duckdb.Error, match="sessions rebuild"):
        con.sql("SELECT count(*) FROM sessions").fetchall()
    con.close()
    # Any command reads the copy's own files, and rebuilds its database on the way.
    assert per_agent(copied) == {"agent-0": 2, "agent-1": 2, "agent-2": 2}
    assert count(copied) == 6
    assert problems(copied) == [] and check(copied).sessions == 6
    con = duckdb.connect(str(copied / "sessions.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM sessions").fetchall() == [(6,)]
    con.close()
    rebuild(copied)
    # The original gone, the copy answers, and ingests on its own.
    shutil.rmtree(original)
    assert count(copied) == 6
    ingest([str(write("c.ndjson", ndjson([session(n) for n in range(40, 43)])))], copied)
    assert count(copied) == 9 and problems(copied) == []


def test_an_ingest_into_a_copy_rebuilds_its_database(write: Write, tmp_path: Path) -> None:
    original, copied = tmp_path / "original", tmp_path / "copy"
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(6)])))], original)
    _cp_a(original, copied)
    ingest([str(write("b.ndjson", ndjson([session(n) for n in range(6, 9)])))], copied)
    ingest([str(write("c.ndjson", ndjson([session(n) for n in range(9, 30)])))], original)
    con = duckdb.connect(str(copied / "sessions.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM sessions").fetchall() == [(9,)]
    con.close()
    assert problems(copied) == []


def test_a_moved_warehouse_answers_at_once(write: Write, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "moved" / "after"
    rows = [session(n) for n in range(6)] + [session(99, duration=-1)]
    ingest([str(write("a.ndjson", ndjson(rows)))], before)
    after.parent.mkdir()
    before.rename(after)
    # Through the CLI: a moved warehouse's database named files that are gone (exit 70).
    stats = run_cli("stats", "-w", after, "--format", "json")
    assert stats.returncode == 0, stats.stderr
    assert {r["agent_id"]: r["session_count"] for r in json.loads(stats.stdout)} == {
        "agent-0": 2,
        "agent-1": 2,
        "agent-2": 2,
    }
    assert sql(after, "SELECT count(*) AS n FROM rejects") == [{"n": 1}]
    report = run_cli("report", "-w", after, "--out", tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    checked = run_cli("check", "-w", after)
    assert checked.returncode == 0, checked.stderr
    rebuilt = run_cli("rebuild", "-w", after)
    assert rebuilt.returncode == 0 and "rebuilt" in rebuilt.stdout, rebuilt.stderr
    assert problems(after) == []
    # And back again, where a database built for `after` names files that are gone.
    after.rename(before)
    assert per_agent(before) == {"agent-0": 2, "agent-1": 2, "agent-2": 2}


def test_a_copy_that_followed_links_is_a_warehouse_of_its_own(write: Write, tmp_path: Path) -> None:
    # A Delta warehouse holds no links: any copy is a whole warehouse.
    original, copied = tmp_path / "original", tmp_path / "copy"
    ingest([str(write("a.ndjson", ndjson([session(n) for n in range(6)])))], original)
    shutil.copytree(original, copied, symlinks=False)
    ingest([str(write("b.ndjson", ndjson([session(n) for n in range(6, 30)])))], original)
    assert count(copied) == 6
    result = run_cli("ingest", write("c.ndjson", ndjson([session(50)])), "-w", copied)
    assert result.returncode == 0, result.stderr
    assert count(copied) == 7 and count(original) == 30 and problems(copied) == []


def test_a_rebuild_needs_a_warehouse(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="run `sessions ingest"):
        rebuild(tmp_path / "none")
    assert not (tmp_path / "none").exists()


# An ingest given a folder (or glob) that holds the warehouse reads the exports only.
def test_an_ingest_of_a_folder_that_holds_the_warehouse_skips_it(
    write: Write, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    write("a.ndjson", ndjson([session(n) for n in range(5)]))
    wh = exports / "wh"
    for run in range(2):  # the second time, the warehouse has files of every kind
        result = run_cli("ingest", exports, "-w", wh, "--json", "--force")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert [f["path"] for f in report["per_file"]] == [str(exports / "a.ndjson")]
        assert report["rows_read"] == 5
        if run:
            assert re.search(
                rf"skipped \d+ file\(s\) of the warehouse {re.escape(str(wh))} itself",
                result.stderr,
            )
    assert files_read(wh) == (5, 5)


@pytest.mark.parametrize(
    ("given", "warehouse"),
    [
        (".", "wh"),
        (".", "./wh"),
        ("*", "wh"),
        ("**/*", "wh"),
        ("wh/sessions/**/*.parquet", "wh"),
        ("link", "wh"),
        ("**", "wh"),
    ],
)
def test_paths_and_globs_that_reach_into_the_warehouse_skip_it(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, warehouse: str
) -> None:
    work = tmp_path / "exports"
    write("a.ndjson", ndjson([session(n) for n in range(5)]))
    wh = work / warehouse
    ingest([str(write("b.ndjson", ndjson([session(n) for n in range(5, 9)])))], wh)
    (work / "link").symlink_to(wh.name)  # a link to the warehouse, beside the exports
    monkeypatch.chdir(work)
    notes: list[str] = []
    if given in ("wh/sessions/**/*.parquet", "link"):
        with pytest.raises(InputError, match="holds no export files, only the warehouse"):
            ingest([given], Path(warehouse), notify=notes.append)
        return
    report = ingest([given], Path(warehouse), Options(force=True), notify=notes.append)
    assert sorted(Path(f.path).name for f in report.files) == ["a.ndjson", "b.ndjson"]
    assert report.rows_read == 9 and report.rows_rejected == 0
    assert files_read(wh) == (9, 9)
    assert all("of the warehouse" in note for note in notes)


@pytest.mark.parametrize(
    "odd", ["q?x", "back\\slash", "hash#x", "pct%20x", "new\nline", "tab\tx", "f" * 300]
)
def test_a_path_duckdb_would_misread_is_refused_before_anything_is_written(
    odd: str, write: Write, tmp_path: Path
) -> None:
    export = write("a.ndjson", ndjson([session(1)]))
    wh = tmp_path / odd / "wh"
    for args in (["ingest", export], ["stats"], ["sql", "select 1"], ["rebuild"]):
        result = run_cli(*args, "--warehouse", wh)
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1 and "choose another folder" in result.stderr
    assert odd not in os.listdir(tmp_path)  # (a name too long cannot even be asked about)


@pytest.mark.parametrize(
    ("given", "says"),
    [("", "is empty"), ("s3://bkt//x", "empty folder name"), ("afile", "is a file")],
)
def test_warehouses_that_cannot_be_are_one_line(tmp_path: Path, given: str, says: str) -> None:
    (tmp_path / "afile").write_text("mine\n")
    for args in (["stats"], ["sql", "select 1"], ["check"], ["history"], ["vacuum"], ["migrate"]):
        result = run_cli(*args, "--warehouse", given, cwd=tmp_path)
        assert says in one_line_error(result), (args, result.stderr)
    assert (tmp_path / "afile").read_text() == "mine\n"
