"""The peers of `sessions ingest` (one script each under bench/peers/), and how to read back
what each one stored (for the probe)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

PEERS_DIR = Path(__file__).resolve().parent / "peers"
# dlt reports usage to its makers unless told not to; a benchmark sends nothing anywhere.
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
# Its warnings (one is "Falling back to `append`", which the probe measures) would fill the
# benchmark's output three times a run.
os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"


@dataclass(frozen=True)
class Peer:
    name: str  # the case's name in the results
    script: str  # under bench/peers/
    # What it stored, as a DuckDB relation: a Parquet glob under its output folder, or a
    # table of the DuckDB database it wrote.
    stored: str
    needs: tuple[str, ...] = ()  # modules that must import for it to run
    # Whether its script takes `lenient` (its library's documented way past a bad row).
    lenient: bool = False

    @property
    def path(self) -> Path:
        return PEERS_DIR / self.script

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None."""
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        if self.name.startswith("Spark") and shutil.which("java") is None:
            return "no Java runtime (java) on PATH"
        return None

    def relation(self, con: duckdb.DuckDBPyConnection, out: Path) -> duckdb.DuckDBPyRelation:
        if ".duckdb:" in self.stored:
            database, table = self.stored.split(":")
            con.execute(f"ATTACH '{out / database}' AS peer (READ_ONLY)")
            return con.sql(f"SELECT * FROM peer.{table}")
        glob = f"{out}/{self.stored}"
        return con.sql(f"SELECT * FROM read_parquet('{glob}', union_by_name = true)")


PEERS: tuple[Peer, ...] = (
    Peer(
        "polars + Pandera (explicit schema, validate, unique, partitioned write)",
        "polars_pandera.py",
        "**/*.parquet",
        ("polars", "pandera"),
        lenient=True,
    ),
    Peer(
        "pandas + Pandera (same job)",
        "pandas_pandera.py",
        "**/*.parquet",
        ("pandas", "pandera"),
    ),
    Peer(
        "dlt, Arrow batches -> local Parquet (filesystem destination)",
        "dlt_parquet.py",
        "data/bench/sessions/*.parquet",
        ("dlt",),
    ),
    Peer(
        "dlt, Arrow batches -> DuckDB destination, merge on session_id",
        "dlt_duckdb.py",
        "peer.duckdb:bench.sessions",
        ("dlt",),
    ),
    Peer(
        "Spark local[2] (read, dropDuplicates, partitioned write)",
        "spark_local.py",
        "**/*.parquet",
        ("pyspark",),
        lenient=True,
    ),
)
