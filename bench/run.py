"""`make bench`: the full ingest beside reference readers, on the same files, in one run.

Every measurement is a separate process, timed from outside; its peak RSS comes from wait4().
Each case runs `--repeat` times and the median is reported, with each ratio to DuckDB's own
reader of the same file. The table is printed and written to bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    case: str
    rows: int
    input_bytes: int
    seconds: float
    peak_rss: int  # bytes
    cpu_seconds: float = 0.0  # user + system, all threads
    reference: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.seconds


def measure(command: list[str], *, cwd: Path | None = None) -> tuple[float, int, float]:
    """Wall time, peak RSS and CPU time of one run of `command`."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def repeated(
    case: str, command: list[str], rows: int, size: int, repeat: int, reset: Path | None = None
) -> Result:
    runs = []
    for _ in range(repeat):
        if reset is not None:
            shutil.rmtree(reset, ignore_errors=True)
        runs.append(measure(command))
    seconds = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    print(f"  {case}: {seconds:.2f} s, CPU {cpu:.2f} s, peak {peak / 2**20:,.0f} MiB", flush=True)
    return Result(case, rows, size, seconds, peak, cpu)


def python(code: str) -> list[str]:
    return [str(BIN / "python"), "-c", code]


def generate(path: Path, sessions: int, seed: int, fmt: str, offset: int = 0) -> None:
    code = f"""
import polars as pl
from pipeline.generate import as_text, pages, sessions
data = as_text(sessions({sessions}, seed={seed}))
data = data.with_columns(session_id=pl.lit("b{offset}_") + data["session_id"])
fmt, path = {fmt!r}, {str(path)!r}
if fmt == "ndjson":
    data.write_ndjson(path)
elif fmt == "csv":
    data.write_csv(path)
else:
    pages(data, 100).write_ndjson(path)
"""
    subprocess.run(python(code), check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1M and 5M sessions")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (large)")
    args = parser.parse_args()
    one_m, five_m = int(1_000_000 * args.scale), int(5_000_000 * args.scale)
    increment = int(100_000 * args.scale)
    work = args.work or Path(tempfile.mkdtemp(prefix="sessions-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env_key = {"SESSIONS_PII_KEY": "benchmark key, 32 bytes or longer"}
    os.environ.update(env_key)
    sessions = str(BIN / "sessions")
    results: list[Result] = []

    print(f"generating exports in {work} ...", flush=True)
    files = {
        "ndjson": work / "1m.ndjson",
        "csv": work / "1m.csv",
        "pages": work / "1m_pages.ndjson",
        "ndjson_5m": work / "5m.ndjson",
        "ndjson_5m_b": work / "5m_b.ndjson",
        "increment": work / "100k.ndjson",
    }
    generate(files["ndjson"], one_m, 1, "ndjson")
    generate(files["csv"], one_m, 1, "csv")
    generate(files["pages"], one_m, 1, "pages")
    generate(files["ndjson_5m"], five_m, 2, "ndjson", offset=5)
    generate(files["ndjson_5m_b"], five_m, 3, "ndjson", offset=6)
    generate(files["increment"], increment, 4, "ndjson", offset=9)

    wh = work / "wh"
    floor: dict[str, float] = {}
    for fmt, reader in (("ndjson", "read_json"), ("csv", "read_csv")):
        path = files[fmt]
        size = path.stat().st_size
        print(f"{fmt}, {one_m:,} sessions, {size / 1e6:,.0f} MB", flush=True)
        reference = repeated(
            f"DuckDB {reader} -> parquet ({fmt})",
            python(
                f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM {reader}('{path}')) "
                f"TO '{work / 'ref.parquet'}' (FORMAT parquet)\")"
            ),
            one_m, size, args.repeat,
        )  # fmt: skip
        results.append(reference)
        full = repeated(
            f"sessions ingest ({fmt})",
            [sessions, "ingest", str(path), "-w", str(wh), "-q"],
            one_m, size, args.repeat, reset=wh,
        )  # fmt: skip
        full.reference = reference.case
        results.append(full)
        if fmt == "ndjson":
            floor = checks_alone(path, wh)
            polars = repeated(
                "polars scan_ndjson -> sink_parquet",
                python(
                    f"import polars as pl; "
                    f"pl.scan_ndjson('{path}').sink_parquet('{work / 'p.parquet'}')"
                ),
                one_m, size, args.repeat,
            )  # fmt: skip
            polars.reference = reference.case
            results.append(polars)
            try:
                import pandas  # noqa: F401

                naive = repeated(
                    "pandas read_json(lines=True).to_parquet",
                    python(
                        f"import pandas as pd; pd.read_json('{path}', lines=True)"
                        f".to_parquet('{work / 'pd.parquet'}')"
                    ),
                    one_m, size, 1,
                )  # fmt: skip
                naive.reference = reference.case
                results.append(naive)
            except ImportError:
                print("  pandas is not installed: the naive reference is not measured")

    size = files["pages"].stat().st_size
    print(f"API pages, {one_m:,} sessions", flush=True)
    results.append(
        repeated(
            "sessions ingest (API pages as NDJSON)",
            [sessions, "ingest", str(files["pages"]), "-w", str(wh), "-q"],
            one_m,
            size,
            args.repeat,
            reset=wh,
        )
    )

    print(f"{five_m:,} sessions, NDJSON: memory as the input grows", flush=True)
    size = files["ndjson_5m"].stat().st_size
    big = repeated(
        f"sessions ingest (NDJSON, {five_m:,})",
        [sessions, "ingest", str(files["ndjson_5m"]), "-w", str(wh), "-q"],
        five_m, size, 1, reset=wh,
    )  # fmt: skip
    results.append(big)

    print("incremental ingest", flush=True)
    size = files["increment"].stat().st_size
    empty = repeated(
        f"{increment:,} into an empty warehouse",
        [sessions, "ingest", str(files["increment"]), "-w", str(work / "empty"), "-q"],
        increment, size, args.repeat, reset=work / "empty",
    )  # fmt: skip
    results.append(empty)
    into_big = []
    for _ in range(args.repeat):
        # The 5M warehouse from above, copied so that every repeat starts from it.
        target = work / "wh_copy"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(wh, target, symlinks=True)
        into_big.append(
            measure([sessions, "ingest", str(files["increment"]), "-w", str(target), "-q"])
        )
    seconds = statistics.median(r[0] for r in into_big)
    peak = max(r[1] for r in into_big)
    cpu = statistics.median(r[2] for r in into_big)
    case = f"{increment:,} into a {five_m:,}-session warehouse"
    result = Result(case, increment, size, seconds, peak, cpu, reference=empty.case)
    print(f"  {result.case}: {seconds:.2f} s", flush=True)
    results.append(result)

    print(f"stats views over {2 * five_m:,} sessions (warm)", flush=True)
    subprocess.run([sessions, "ingest", str(files["ndjson_5m_b"]), "-w", str(wh), "-q"], check=True)
    views = [
        "agent_duration_stats",
        "channel_duration_stats",
        "prompt_version_duration_stats",
        "agent_daily_duration_stats",
        "prompt_version_changes",
    ]
    database = wh / "sessions.duckdb"
    view_times = python(
        f"""
import duckdb, statistics, time
con = duckdb.connect({str(database)!r}, read_only=True)
# A query slower than 2 s (a busy machine) would draw DuckDB's progress bar on stdout,
# which this output is parsed from.
con.execute("SET enable_progress_bar = false")
for view in {views!r}:
    con.sql(f"SELECT * FROM {{view}}").fetchall()  # warm
    runs = []
    for _ in range(5):
        started = time.monotonic(); con.sql(f"SELECT * FROM {{view}}").fetchall()
        runs.append(time.monotonic() - started)
    print(view, statistics.median(runs))
"""
    )
    output = subprocess.run(view_times, check=True, capture_output=True, text=True).stdout
    view_results = [line.split() for line in output.splitlines()]
    for view, seconds_text in view_results:
        print(f"  {view}: {float(seconds_text):.3f} s", flush=True)

    write_results(args, results, view_results, 2 * five_m, floor)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


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
    command = [*python(_CHECKS_ALONE), str(path), str(warehouse)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    measured: dict[str, float] = json.loads(output.stdout)
    print("  checks alone, CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in measured.items()))
    return measured


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import duckdb
    import polars

    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"polars {polars.__version__}"
    )


def write_results(
    args: argparse.Namespace,
    results: list[Result],
    views: list[list[str]],
    view_rows: int,
    floor: dict[str, float],
) -> None:
    by_case = {r.case: r for r in results}
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make bench` with scale {args.scale}, "
        f"median of {args.repeat} runs (1 run for the 5x and pandas cases).",
        f"Machine: {machine()}.",
        "",
        "| case | rows | wall s | CPU s | rows/s | MB/s | peak RSS MiB | vs DuckDB reference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ref = by_case.get(r.reference)
        ratio = f"{ref.seconds / r.seconds:.2f}x speed" if ref else ""
        lines.append(
            f"| {r.case} | {r.rows:,} | {r.seconds:.2f} | {r.cpu_seconds:.2f} | "
            f"{r.rows_per_s:,.0f} | {r.mb_per_s:,.0f} | {r.peak_rss / 2**20:,.0f} | {ratio} |"
        )
    lines += ["", f"Stats views over {view_rows:,} sessions, warm, median of 5:", ""]
    lines += ["| view | seconds |", "|---|---:|"]
    lines += [f"| {view} | {float(seconds):.3f} |" for view, seconds in views]
    lines += _floor_table(by_case["DuckDB read_json -> parquet (ndjson)"], floor)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.write_text(text)
    print(f"written to {args.out}")


def _floor_table(reference: Result, floor: dict[str, float]) -> list[str]:
    """Why 0.8x of DuckDB's reader cannot be had: the CPU time that speed leaves, against what
    DuckDB's reader and the checks no ingest may skip spend alone."""
    cores = os.cpu_count() or 1
    budget = cores * reference.seconds / 0.8
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
        f"CPU time at 0.8x of the reference: {cores} cores x {reference.seconds:.2f} s / 0.8 = "
        f"{budget:.2f} s, on {reference.rows:,} NDJSON lines. What the reference and the checks "
        "an ingest may not skip spend alone (before typing text into values, deduplicating, "
        "partitioning, and any cost of putting them together):",
        "",
        "| step | CPU s |",
        "|---|---:|",
        *[f"| {step} | {seconds:.2f} |" for step, seconds in steps],
        f"| **together** | **{total:.2f}** ({total / budget:.0%} of the {budget:.2f} s) |",
    ]


if __name__ == "__main__":
    main()
