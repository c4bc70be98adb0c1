"""An export large enough that an ingest of it takes seconds, and warehouse state checks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.generate import as_text, sessions

BIG_SESSIONS = 70_000


@pytest.fixture(scope="session")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.ndjson"
    data = sessions(BIG_SESSIONS, seed=21)
    # Other ids than the small exports', so that the big one adds sessions.
    as_text(data).with_columns(session_id="big_" + data["session_id"]).write_ndjson(path)
    return path


def state(wh: Path) -> tuple[int, int]:
    """(sessions, distinct keys) as any Parquet reader sees the dataset; fails if unreadable."""
    con = duckdb.connect()
    (row,) = con.sql(
        f"SELECT count(*), count(DISTINCT session_key) "
        f"FROM read_parquet('{wh}/sessions/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    return row


def leftovers(wh: Path) -> list[str]:
    """What a finished ingest must not leave: staging, extra snapshots, half-made links."""
    found = [str(p) for p in (wh / ".staging").glob("*")]
    found += [str(p) for p in wh.glob(".current.*")] + [
        str(p) for p in wh.glob(".sessions.duckdb.*")
    ]
    snapshots = sorted((wh / ".snapshots").iterdir())
    if len(snapshots) > 2:
        found += [str(p) for p in snapshots[:-2]]
    return found
