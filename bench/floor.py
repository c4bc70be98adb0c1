"""What the checks the ingest may not skip cost on their own, in CPU seconds, and the table
that sets them beside the CPU time a ratio to DuckDB's reader leaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from measure import ROOT, Failed, Result, measure, python, repeated

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
from pipeline.read import readers
from pipeline.read.source import sniff
from pathlib import Path
from schemas import FIELD_NAMES, pandera_schema

path, stored_at = sys.argv[1], sys.argv[2]
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
out = {}
# As the ingest counts a plain file's lines: beside DuckDB, with the file's SHA-256 (the
# manifest's name for its content) in the same pass.
start = cpu()
counter = readers.line_counter(sniff(Path(path)), hashed=True)
counter.start()
counter.result()
out["count_and_sha256"] = cpu() - start
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
# The views database every ingest leaves (the file any SQL client opens), built again.
from pipeline.store import database, location
wh = location.of(stored_at)
database.path(wh).unlink()
start = cpu()
database.refresh(wh)
out["views_database"] = cpu() - start
print(json.dumps(out))
"""
# Starting Python and importing what an ingest needs (polars, pyarrow, Pandera, deltalake, the
# project) beyond what the lower bound's own process imports (DuckDB): in CPU seconds, the
# median of 3 runs each.
_IMPORTS = ("import pipeline.ingest", "import duckdb")


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
    imports = [sorted(measure(python(code), cwd=ROOT)[2] for _ in range(3))[1] for code in _IMPORTS]
    measured["imports"] = max(imports[0] - imports[1], 0.0)
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
        ("the independent count of lines, with the file's SHA-256", floor["count_and_sha256"]),
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


# The SQL of the least an ingest that reads as ours does can do with a file: the fast
# reader's own query (each line's keys, its values typed only where their layout leaves no
# doubt), the content hash of each row it types, and the rows into one zstd Parquet file.
# Built by the project's own code, in a process of its own; the SQL is then run by a process
# that imports DuckDB alone.
_LOWER_BOUND_SQL = """
import sys
from pathlib import Path
from pipeline.read import fast_csv, fast_ndjson
from pipeline.read.source import Format, sniff
from pipeline.store import merge
from schemas import FIELD_NAMES

path, out, sql_file = sys.argv[1:4]
source = sniff(Path(path))
if source.format is Format.CSV:
    query = fast_csv._sql(tuple(fast_csv.header(source)), source.gzipped)
else:
    with open(path, "rb") as f:
        usual = fast_ndjson._usual_keys(f.read(1 << 20))
    query = fast_ndjson._sql(usual, fast_ndjson.tolerance_needed(source), source.gzipped)
query = query.replace("$1", "'" + path.replace("'", "''") + "'")
content_hash = merge._content_hash_sql().replace('"extra_fields"', "NULL::VARCHAR")
names = ", ".join(f'"{n}"' for n in FIELD_NAMES)
Path(sql_file).write_text(
    f"COPY (SELECT {names}, {content_hash} AS content_hash FROM ({query}) WHERE _ok) "
    f"TO '{out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
)
"""
_RUN_SQL = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")
con.execute(open(sys.argv[1]).read())
"""
LOWER_BOUND = "lower bound: the fast reader's query, content hash, one zstd file"


def lower_bound(
    path: Path, label: str, rows: int, work: Path, repeat: int, reference: str
) -> Result | None:
    """The lower bound of an ingest of `path` with today's reading (see `_LOWER_BOUND_SQL`):
    no line count, Pandera, pseudonyms, deduplication, partitions, Delta commit or views, and
    none of the imports but DuckDB's. None when it cannot be built (the ingest's parts were
    renamed) or run: the rest of the benchmark goes on."""
    sql_file, out = work / "lower_bound.sql", work / "lower_bound.parquet"
    if (failure := build_lower_bound(path, out, sql_file)) is not None:
        print(f"  lower bound: not measured ({failure})", flush=True)
        return None
    try:
        return repeated(
            f"{LOWER_BOUND} ({label})",
            lower_bound_command(sql_file),
            rows, path.stat().st_size, repeat, reference=reference,
        )  # fmt: skip
    except Failed as exc:
        print(f"  lower bound: not measured ({exc})", flush=True)
        return None
    finally:
        out.unlink(missing_ok=True)


def build_lower_bound(path: Path, out: Path, sql_file: Path) -> str | None:
    """Write to `sql_file` the lower bound's SQL for `path`, writing to `out`; the last line
    of the failure, if it could not be built."""
    built = subprocess.run(
        [*python(_LOWER_BOUND_SQL), str(path), str(out), str(sql_file)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if built.returncode != 0:
        return (built.stderr.strip().splitlines() or [f"exit {built.returncode}"])[-1]
    return None


def lower_bound_command(sql_file: Path) -> list[str]:
    return [*python(_RUN_SQL), str(sql_file)]


# What the lower bound's rows are, said once under the results.
LOWER_BOUND_NOTE = (
    f"{LOWER_BOUND[0].upper()}{LOWER_BOUND[1:]}: what any ingest that reads the file as "
    "`sessions ingest` does must spend at least, in DuckDB alone. It runs the fast reader's "
    "own query (each line's keys; each value typed only where its layout leaves no doubt, "
    "so that it is the value the exact reader gives), hashes each typed row as the merge "
    "does, and writes the rows to one zstd Parquet file. It leaves out all of this: the "
    "imports but DuckDB's, the odd rows' exact reading, the independent line count and "
    "the file's SHA-256, Pandera, pseudonyms, deduplication, day partitions, the Delta "
    "commit and the views database. A target above its ratio is out of reach for this "
    "reading."
)


def reach_table(
    bounds: list[tuple[str, Result, Result, float, str]], floor: dict[str, float]
) -> list[str]:
    """Whether each target is within reach of today's reading: the lower bound (`bounds`:
    label, lower bound, reference, the target's ratio and its text) plus the CPU time the
    checks it leaves out cost alone (the line count with the file's SHA-256, Pandera,
    HMAC), spread over every core as if nothing else waited for them."""
    needed = ("count_and_sha256", "pandera", "hmac", "imports", "views_database")
    if not bounds or any(k not in floor for k in needed):
        return []
    cores = os.cpu_count() or 1
    checks = sum(floor[k] for k in needed)
    hashing = floor.get("content_hash", 0.0)
    lines = [
        "",
        f"Within reach of today's reading? The lower bound's time, plus {checks:.2f} CPU s of "
        "what every ingest must also do and the lower bound leaves out, each measured alone "
        f"(the line count with the file's SHA-256 {floor['count_and_sha256']:.2f}, Pandera "
        f"{floor['pandera']:.2f}, HMAC {floor['hmac']:.2f}, the imports beyond DuckDB's "
        f"{floor['imports']:.2f}, the views database {floor['views_database']:.2f}), spread over "
        f"{cores} cores as if nothing waited for anything. Still left out, at no cost: the odd "
        "rows' exact reading, deduplication, day partitions and the Delta commit. The last "
        "column also takes away the content hash of every row "
        f"({hashing:.2f} CPU s alone), which the stored sessions carry (`content_hash`): what "
        "storing it no more, and comparing only the sessions delivered again, would leave.",
        "",
        "| export | lower bound | with those | target | | without hashing every row |",
        "|---|---:|---:|---|---|---:|",
    ]
    for label, bound, reference, minimum, text in bounds:
        alone = reference.seconds / bound.seconds
        best = reference.seconds / (bound.seconds + checks / cores)
        unhashed = reference.seconds / (bound.seconds + (checks - hashing) / cores)
        verdict = "out of reach" if best < minimum else "not ruled out"
        lines.append(
            f"| {label} | {alone:.2f}x | {best:.2f}x | {text} | {verdict} | {unhashed:.2f}x |"
        )
    return lines
