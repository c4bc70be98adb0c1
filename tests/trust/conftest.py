"""An export large enough that an ingest of it takes seconds, and warehouse state checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipeline.store import location, runs, tables
from tests.conftest import write_big_export

BIG_SESSIONS = 70_000


@pytest.fixture(scope="session")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_export(tmp_path_factory.mktemp("big") / "big.ndjson", BIG_SESSIONS, 21)


def state(wh: Path) -> tuple[int, int]:
    """(sessions, distinct keys) as any Delta reader sees the table; fails if unreadable."""
    table = DeltaTable(str(wh / "sessions")).to_pyarrow_table(columns=["session_key"])
    return table.num_rows, len(set(table["session_key"].to_pylist()))


def leftovers(wh: Path) -> list[str]:
    """What a finished ingest must not leave: staging, half-built databases, files of runs
    that never committed, and rows of such runs in the rejects table."""
    found = [str(p) for p in (wh / ".staging").glob("*")]
    found += [str(p) for p in wh.glob(".sessions.duckdb.*")]
    version = tables.at(location.of(wh))
    committed = set(version.runs) if version is not None else set()
    for name in ("sessions", "rejects"):
        for path in (wh / name).rglob("part-*.parquet"):
            run = runs.run_of(path.name)
            dead = run is not None and run not in committed and "_delta_log" not in path.parts
            if dead and (name == "sessions" or _in_table(wh / name, path)):
                found.append(str(path))
    return found


def _in_table(table: Path, path: Path) -> bool:
    return str(path) in set(DeltaTable(str(table)).file_uris())
