"""The benchmark's lower bound does what its row says: the fast reader's own typing and the
merge's content hash, so that its rows are the sessions the ingest stores, each with the hash
the ingest stores. (A lower bound that typed or hashed less would say nothing of the ingest.)
Built and run as `make bench` runs it: by the project's code in one process, the SQL by a
process that imports DuckDB alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
ROWS = 2000


@pytest.fixture(autouse=True)
def _bench_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize("kind", ["ndjson", "csv", "odd_ndjson"])
def test_lower_bound_types_and_hashes_as_the_ingest_stores(kind: str, tmp_path: Path) -> None:
    import floor

    suffix = ".csv" if kind == "csv" else ".ndjson"
    export = tmp_path / f"export{suffix}"
    script = BENCH / "exports.py"
    subprocess.run(
        [sys.executable, str(script), kind, str(export), str(ROWS), "1", "0"], check=True
    )
    sql_file, out = tmp_path / "bound.sql", tmp_path / "bound.parquet"
    assert floor.build_lower_bound(export, out, sql_file) is None
    subprocess.run(floor.lower_bound_command(sql_file), check=True)

    warehouse = tmp_path / "wh"
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "sessions"), "ingest", str(export), "-w", str(warehouse), "-q",
         "--pii", "keep"],
        check=True,
    )  # fmt: skip
    stored = subprocess.run(
        [str(bin_dir / "sessions"), "sql", "-w", str(warehouse), "--format", "json",
         "SELECT session_id, duration, content_hash FROM sessions"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    stored_rows = {(r["session_id"], r["duration"], r["content_hash"]) for r in json.loads(stored)}
    bound = set(duckdb.sql(f"SELECT session_id, duration, content_hash FROM '{out}'").fetchall())
    if kind == "odd_ndjson":
        # Its odd lines are the exact reader's, not the lower bound's, and it keeps both
        # deliveries of a re-delivered session: every session it typed is stored, and every
        # stored session it typed is one of its rows, hash and all.
        typed_ids = {row[0] for row in bound}
        assert len(typed_ids) >= ROWS * 0.97
        assert typed_ids <= {row[0] for row in stored_rows}
        assert {row for row in stored_rows if row[0] in typed_ids} <= bound
    else:
        assert bound == stored_rows
        assert len(bound) == ROWS
