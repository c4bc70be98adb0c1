"""What the checks the ingest may not skip cost on their own, in CPU seconds, and the table
that sets them beside the CPU time a ratio to DuckDB's reader leaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from measure import ROOT, Result, python

# What the checks the ingest may not skip cost on their own, in CPU seconds: each line's key
# names (unknown and duplicate keys), Pandera on the typed sessions, the independent count of
# lines, the pseudonyms of the callers, the content hash that tells an update from a repeat.
# Measured in one process, on the NDJSON export and the warehouse ingested from it.
_CHECKS_ALONE = """
import json, resource, sys
import duckdb, polars as pl
from pipeline import pii
from pipeline.store import merge, reader
from pipeline.read.gather import MIN_ROWS
from pipeline.read.records import iter_records
from schemas import FIELD_NAMES, pandera_schema

path, stored_at = sys.argv[1], sys.argv[2]
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
out = {}
start = cpu()
with open(path, "rb") as f:
    lines = sum(len(records.line) for records in iter_records(f))
out["count"] = cpu() - start
con = duckdb.connect()
objects = f"FROM read_ndjson_objects('{path}')"
start = cpu(); con.sql("SELECT count(json) " + objects).fetchall(); read = cpu() - start
start = cpu(); con.sql("SELECT sum(len(json_keys(json))) " + objects).fetchall()
out["keys"] = cpu() - start - read
# The files of the current version, from the Delta log: a glob of the table's folder would
# also read the files that a later version replaced (kept until `sessions vacuum`).
_, version = reader.version(stored_at)
files = [f.location for f in version.session_files()]
sessions = pl.read_parquet(files).select(FIELD_NAMES)
schema = pandera_schema()
start = cpu()
for i in range(0, len(sessions), MIN_ROWS):
    schema.validate(sessions.slice(i, MIN_ROWS), lazy=True)
out["pandera"] = cpu() - start
start = cpu()
pii.Pseudonyms(con, b"a key")(sessions["source"])
out["hmac"] = cpu() - start
con.register("sessions", sessions.with_columns(extra_fields=pl.lit(None, pl.String)).to_arrow())
start = cpu()
con.sql(f"SELECT max({merge._content_hash_sql()}) FROM sessions").fetchall()
out["content_hash"] = cpu() - start
print(json.dumps(out))
"""


def checks_alone(path: Path, warehouse: Path) -> dict[str, float]:
    """The CPU seconds of each check alone; empty when the script no longer runs (it uses the
    ingest's own parts, which the ingest may rename): the rest of the benchmark goes on."""
    command = [*python(_CHECKS_ALONE), str(path), str(warehouse)]
    output = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if output.returncode != 0:
        last = (output.stderr.strip().splitlines() or [""])[-1]
        print(f"  checks alone: not measured ({last})", flush=True)
        return {}
    measured: dict[str, float] = json.loads(output.stdout)
    print("  checks alone, CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in measured.items()))
    return measured


def floor_table(reference: Result, floor: dict[str, float], ratio: float = 0.4) -> list[str]:
    """The CPU time that `ratio` of DuckDB's reader leaves on this machine's cores, against
    what DuckDB's reader and the checks no ingest may skip spend alone."""
    cores = os.cpu_count() or 1
    budget = cores * reference.seconds / ratio
    steps = [
        (f"{reference.case} (the reference itself)", reference.cpu_seconds),
        ("the key names of every line (unknown and duplicate keys)", floor["keys"]),
        ("the independent count of lines", floor["count"]),
        ("Pandera on the typed sessions", floor["pandera"]),
        ("HMAC-SHA256 of each distinct caller", floor["hmac"]),
        ("MD5 content hash of each session", floor["content_hash"]),
    ]
    total = sum(seconds for _, seconds in steps)
    return [
        "",
        f"CPU time at {ratio}x of the reference: {cores} cores x {reference.seconds:.2f} s / "
        f"{ratio} = {budget:.2f} s, on {reference.rows:,} NDJSON lines. What the reference and "
        "the checks an ingest may not skip spend alone (before typing text into values, "
        "deduplicating, partitioning, and any cost of putting them together):",
        "",
        "| step | CPU s |",
        "|---|---:|",
        *[f"| {step} | {seconds:.2f} |" for step, seconds in steps],
        f"| **together** | **{total:.2f}** ({total / budget:.0%} of the {budget:.2f} s) |",
    ]
