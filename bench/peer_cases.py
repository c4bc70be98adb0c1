"""The peers of `sessions ingest` (one script each under bench/peers/), and how to read back
what each one stored (for the probe)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from schemas import SESSION_FIELDS, Kind

PEERS_DIR = Path(__file__).resolve().parent / "peers"
# dlt reports usage to its makers unless told not to; a benchmark sends nothing anywhere.
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
# Its warnings (one is "Falling back to `append`", which the probe measures) would fill the
# benchmark's output three times a run.
os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"
# The Spark peer runs apart from the project (see bench/peers/spark_local.py): its schema.
_SPARK = {Kind.TIMESTAMP: "timestamp", Kind.STRING: "string", Kind.INT: "bigint"}
_SPARK |= {Kind.FLOAT: "double", Kind.BOOL: "boolean"}
os.environ["SESSIONS_SPARK_SCHEMA"] = ", ".join(
    f"{f.name} {_SPARK[f.kind]}" for f in SESSION_FIELDS
)
SPARK_PYTHON = "BENCH_SPARK_PYTHON"


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

    # The environment variable naming the Python it runs in ("": the benchmark's own).
    python_from: str = ""

    @property
    def python(self) -> str:
        return os.environ.get(self.python_from, "") if self.python_from else sys.executable

    def command(self, source: Path, out: Path, *, lenient: bool = False) -> list[str]:
        return [self.python, str(self.path), str(source), str(out), *(["lenient"] * lenient)]

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None."""
        if self.python_from:
            if not self.python:
                return f"${self.python_from} (a Python with {', '.join(self.needs)}) is not set"
            check = [self.python, "-c", "; ".join(f"import {m}" for m in self.needs)]
            if subprocess.run(check, capture_output=True).returncode != 0:
                return f"{', '.join(self.needs)} does not import in ${self.python_from}"
        else:
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
        python_from=SPARK_PYTHON,
    ),
)
