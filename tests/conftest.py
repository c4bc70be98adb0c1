"""Shared helpers: write export files, run the real CLI, read the warehouse back."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

SESSIONS = Path(sys.executable).parent / "sessions"


def session(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid session record as the API lists it."""
    record: dict[str, Any] = {
        "timestamp": f"2026-10-{1 + n % 28:02d}T12:{n % 60:02d}:00Z",
        "session_id": f"s{n}",
        "agent_id": f"agent-{n % 3}",
        "agent_name": f"Agent {n % 3}",
        "agent_timezone": "America/Chicago",
        "channel_manager_service": "twilio",
        "channel_manager_type": "voice_twilio_v1",
        "prompt_id": "p1",
        "prompt_version_number": 1 + n % 2,
        "duration": 10.0 + n,
        "is_test": False,
    }
    record.update(overrides)
    return record


def ndjson(records: Sequence[dict[str, Any] | str]) -> bytes:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(autouse=True)
def pii_key_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every CLI it runs, pseudonymises with a key of the test session's own."""
    path = tmp_path_factory.getbasetemp() / "pii.key"
    monkeypatch.setenv("SESSIONS_PII_KEY_FILE", str(path))
    monkeypatch.delenv("SESSIONS_PII_KEY", raising=False)
    return path


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """Write an export file under tmp_path/exports; `.gz` names are gzipped."""

    def _write(name: str, content: bytes | str) -> Path:
        data = content.encode() if isinstance(content, str) else content
        path = tmp_path / "exports" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return path

    return _write


@pytest.fixture
def wh(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `sessions` console script."""
    return subprocess.run(
        [str(SESSIONS), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def delta(warehouse: Path | str, table: str) -> pa.Table | None:
    """A table of the warehouse as any Delta reader sees it (deltalake), or None if absent."""
    try:
        return DeltaTable(f"{warehouse}/{table}").to_pyarrow_table()
    except TableNotFoundError:
        return None


def manifest(warehouse: Path) -> dict[str, Any]:
    """The manifest as of the warehouse's latest version: the file its commit names."""
    from pipeline.store import location, tables

    version = tables.at(location.of(warehouse))
    assert version is not None and version.manifest_path is not None
    body: dict[str, Any] = json.loads((warehouse / version.manifest_path).read_text())
    return body


def stored(warehouse: Path, where: str = "true") -> list[dict[str, Any]]:
    """The sessions in the warehouse, read through Delta (deltalake), queried with DuckDB."""
    table = delta(warehouse, "sessions")
    if table is None or not table.num_rows:
        return []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("delta_sessions", table)
    rel = con.sql(f"SELECT * FROM delta_sessions WHERE {where} ORDER BY session_key")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def rejects(warehouse: Path) -> list[dict[str, Any]]:
    """The quarantine as the commands show it: the rejects table's rows of committed runs."""
    table = delta(warehouse, "rejects")
    if table is None or not table.num_rows:
        return []
    con = duckdb.connect()
    con.register("delta_rejects", table)
    rel = con.sql("SELECT * FROM delta_rejects ORDER BY source_file, element")
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def start(*args: str | Path) -> subprocess.Popen[str]:
    """The installed CLI, started and left running (to be stopped or killed)."""
    return subprocess.Popen(
        [str(SESSIONS), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_big_export(path: Path, count: int, seed: int) -> Path:
    """`count` generated sessions as NDJSON, with ids of their own (`big_…`), so that it adds
    sessions beside the small exports'."""
    from pipeline.generate import as_text, sessions

    data = sessions(count, seed=seed)
    as_text(data).with_columns(session_id="big_" + data["session_id"]).write_ndjson(path)
    return path


def same_csv(left: str, right: str) -> bool:
    """The same rows, numbers within 1e-9 relative: DuckDB's parallel sums add in any order."""
    a, b = list(csv.reader(io.StringIO(left))), list(csv.reader(io.StringIO(right)))
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        return False
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            if u == v:
                continue
            try:
                if math.isclose(float(u), float(v), rel_tol=1e-9):
                    continue
            except ValueError:
                pass
            return False
    return True


# The folders of the slowest test files, and the Spark one: collected first, so that
# `--dist loadfile` hands them out first and the run does not end with one worker alone on a
# long file (tests/warehouse, the last folder by name, ended the run so: a minute of one
# idle core).
_SLOW_FIRST = ("warehouse", "trust", "spark")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: within each part, the order is the collection's.
    items.sort(key=lambda item: item.path.parent.name not in _SLOW_FIRST)


def tree(path: Path) -> dict[str, bytes]:
    """Every file and link below `path`, with its content or target: the warehouse's state."""
    if not path.exists():
        return {}
    state = {}
    for p in sorted(path.rglob("*")):
        name = str(p.relative_to(path))
        if p.is_symlink():
            state[name] = f"-> {os.readlink(p)}".encode()
        elif p.is_file() and p.name != ".lock":
            state[name] = p.read_bytes()
    return state


# Starts a command as the child of a small process of its own and writes the child's peak
# resident memory (KiB) into a file. Linux gives a process the peak of the memory it was
# forked from when it execs (`ru_maxrss`), so a CLI started straight from a test process that
# has grown (a worker that ran Spark or a big in-process ingest) reports that process's peak.
_MEASURED = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(args: Sequence[str | Path], peak: Path) -> list[str]:
    """The command line that runs `args` and writes its own peak RSS (KiB) into `peak`."""
    return [sys.executable, "-c", _MEASURED, str(peak), *map(str, args)]


def peak_kib(peak: Path) -> int:
    return int(peak.read_text())
