"""`make bench`: the full ingest beside DuckDB's bare reader and beside its peers, on the same
files, in one run, with the targets of issue #14 marked met or missed.

Every measurement is a separate process, timed from outside; its peak RSS comes from wait4().
Each case runs `--repeat` times and the median is reported, with its ratio to DuckDB's bare
`COPY (SELECT * FROM read_json|read_csv(file)) TO '...parquet'` of the same file. The tables
are printed and written to bench/results.md. `--scale 0.05 --repeat 1` runs it all in minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import engines
import floor
import probe
import report
import targets
from measure import BIN, ROOT, Failed, Result, measure, python, repeated, script
from peer_cases import PEERS, SPARK_PYTHON

EXPORTS_SCRIPT = Path(__file__).resolve().parent / "exports.py"
KEY = {"SESSIONS_PII_KEY": "benchmark key, 32 bytes or longer"}


@dataclass(frozen=True)
class Export:
    kind: str  # as bench/exports.py names it
    label: str  # in the results
    path: Path
    rows: int  # lines (sessions, for the page files)

    @property
    def reader(self) -> str:
        return "read_csv" if self.path.suffix == ".csv" else "read_json"

    @property
    def size(self) -> int:
        return self.path.stat().st_size


LABELS = {
    "ndjson": "ndjson",
    "csv": "csv",
    "pages": "API pages, one a line (NDJSON)",
    "pages_document": "API pages, one JSON document",
    "odd_ndjson": "1% bad rows, 1% re-deliveries, NDJSON",
    "odd_csv": "1% bad rows, 1% re-deliveries, CSV",
}


def generate(work: Path, kind: str, rows: int, seed: int, offset: int = 0) -> Export:
    """The export, generated unless `work` (kept with --work) holds it from an earlier run."""
    suffix = {"csv": ".csv", "odd_csv": ".csv", "pages_document": ".json"}.get(kind, ".ndjson")
    path = work / f"{kind}_{rows}_seed{seed}{suffix}"
    if not path.exists():
        partial = path.with_name("partial_" + path.name)
        subprocess.run(script(EXPORTS_SCRIPT, kind, partial, rows, seed, offset), check=True)
        partial.rename(path)
    lines = rows + (int(rows * 0.01) if kind.startswith("odd") else 0)
    return Export(kind, LABELS.get(kind, kind), path, lines)


def reference(export: Export, work: Path, repeat: int) -> Result:
    """DuckDB's bare COPY of the file. A file with bad rows would stop it at the first line
    that is not JSON (or has too few fields): for those it skips them (`ignore_errors`)."""
    options = ", ignore_errors = true" if export.kind.startswith("odd") else ""
    target = work / "ref.parquet"
    code = (
        f"import duckdb; duckdb.sql(\"COPY (SELECT * FROM {export.reader}('{export.path}'"
        f"{options})) TO '{target}' (FORMAT parquet)\")"
    )
    case = f"DuckDB {export.reader} -> parquet ({export.label})"
    return repeated(case, python(code), export.rows, export.size, repeat)


def ingest(export: Export, warehouse: Path, repeat: int, ref: Result) -> Result:
    return repeated(
        f"sessions ingest ({export.label})",
        [str(BIN / "sessions"), "ingest", str(export.path), "-w", str(warehouse), "-q"],
        export.rows, export.size, repeat, reset=warehouse, reference=ref.case,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1M and 5M sessions")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (large), kept")
    parser.add_argument(
        "--peers", action=argparse.BooleanOptionalAction, default=True, help="measure the peers"
    )
    # The Spark peer imports nothing of the project: the project's own Python serves where
    # `make spark` installed pyspark in it.
    own = sys.executable if importlib.util.find_spec("pyspark") is not None else None
    parser.add_argument(
        "--spark-python",
        default=os.environ.get(SPARK_PYTHON) or own,
        help=f"a Python with pyspark (default: ${SPARK_PYTHON}, else this one if it has pyspark)",
    )
    args = parser.parse_args()
    if args.spark_python:
        os.environ[SPARK_PYTHON] = args.spark_python
    try:
        run(args)
    except Failed as exc:
        raise SystemExit(f"failed: {exc}") from None


def run(args: argparse.Namespace) -> None:
    one_m, five_m = int(1_000_000 * args.scale), int(5_000_000 * args.scale)
    increment = int(100_000 * args.scale)
    work = args.work or Path(tempfile.mkdtemp(prefix="sessions-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(KEY)
    results: list[Result] = []
    notes: list[str] = []

    print(f"generating exports in {work} ...", flush=True)
    exports = [generate(work, kind, one_m, 1) for kind in LABELS]
    big_a = generate(work, "ndjson", five_m, 2, offset=5)
    big_b = generate(work, "ndjson", five_m, 3, offset=6)
    small = generate(work, "ndjson", increment, 4, offset=9)

    wh = work / "wh"
    ingests: dict[str, Result] = {}
    peer_runs: dict[str, dict[str, Result]] = {}
    floor_cpu: dict[str, float] = {}
    bounds: list[tuple[str, Result, Result, float, str]] = []
    runnable = [p for p in PEERS if p.missing() is None] if args.peers else []
    for p in PEERS:
        if args.peers and (why := p.missing()) is not None:
            notes.append(f"{p.name}: not run, {why}.")
            print(f"  {p.name}: not run, {why}", flush=True)
    for export in exports:
        print(f"{export.label}, {export.rows:,} lines, {export.size / 1e6:,.0f} MB", flush=True)
        ref = reference(export, work, args.repeat)
        full = ingest(export, wh, args.repeat, ref)
        results += [ref, full]
        ingests[export.kind] = full
        if export.kind in ("ndjson", "csv", "odd_ndjson", "odd_csv"):
            bound = floor.lower_bound(
                export.path, export.label, export.rows, work, args.repeat, ref.case
            )
            if bound is not None:
                results.append(bound)
                bounds.append((export.label, bound, ref, *targets.INGEST_RATIO[export.kind]))
                if floor.LOWER_BOUND_NOTE not in notes:
                    notes.append(floor.LOWER_BOUND_NOTE)
        if export.kind == "ndjson":
            floor_cpu = floor.checks_alone(export.path, wh)
            sink = repeated(
                "polars scan_ndjson -> sink_parquet (no checks)",
                python(
                    f"import polars as pl; "
                    f"pl.scan_ndjson('{export.path}').sink_parquet('{work / 'p.parquet'}')"
                ),
                export.rows, export.size, args.repeat, reference=ref.case,
            )  # fmt: skip
            results.append(sink)
        if export.kind in ("ndjson", "csv"):
            for peer in runnable:
                out = work / "peer_out"
                try:
                    measured = repeated(
                        f"{peer.name} ({export.label})",
                        peer.command(export.path, out),
                        export.rows, export.size, args.repeat,
                        reset=out, reference=ref.case, cwd=work,
                    )  # fmt: skip
                except Failed as exc:
                    notes.append(f"{peer.name} failed on the {export.label} export ({exc}).")
                    print(f"  {peer.name}: failed ({exc})", flush=True)
                    continue
                results.append(measured)
                peer_runs.setdefault(peer.name, {})[export.kind] = measured
                shutil.rmtree(out, ignore_errors=True)
            if runnable:
                # The peers take minutes, on a machine others share: the reference once more
                # after them, so that its median spans the time they were measured in.
                ref.again(reference(export, work, args.repeat))

    print(f"{five_m:,} sessions, NDJSON: memory as the input grows", flush=True)
    big = repeated(
        f"sessions ingest (NDJSON, {five_m:,})",
        [str(BIN / "sessions"), "ingest", str(big_a.path), "-w", str(wh), "-q"],
        five_m, big_a.size, 1, reset=wh,
    )  # fmt: skip
    results.append(big)

    print("incremental ingest", flush=True)
    empty, into_big = incremental(small, wh, work, args.repeat, five_m)
    results += [empty, into_big]

    view_rows = 2 * five_m
    print(f"stats views over {view_rows:,} sessions (warm)", flush=True)
    ingest_more = [str(BIN / "sessions"), "ingest", str(big_b.path), "-w", str(wh), "-q"]
    subprocess.run(ingest_more, check=True)
    views = view_times(wh / "sessions.duckdb") + compare_times(wh)

    print(f"engines: DuckDB and Spark on {one_m:,} sessions", flush=True)
    one_m_wh = work / "wh_engines"
    subprocess.run([str(BIN / "sessions"), "ingest", str(exports[0].path), "-w", str(one_m_wh),
                    "-q"], check=True)  # fmt: skip
    notes.append(engines.line(engines.times(one_m_wh, args.repeat), one_m))
    print(f"  {notes[-1]}", flush=True)

    probed: list[probe.Probed] = []
    if args.peers:
        print("16-line probe: one defect a line", flush=True)
        probed = probe.run(work / "probe")

    # The targets, decided on this run's results alone.
    by_case = {r.case: r for r in results}
    for kind, result in ingests.items():
        targets.ingest(result, kind, by_case)
    targets.memory(ingests["ndjson"], None)
    targets.memory(big, ingests["ndjson"])
    targets.incremental(into_big, empty)
    peer_rows: list[tuple[str, Result | None, Result | None]] = []
    for name, runs in peer_runs.items():
        for kind, result in runs.items():
            targets.ahead_of(result, ingests[kind], by_case)
        peer_rows.append((name, runs.get("ndjson"), runs.get("csv")))
    if peer_rows:
        peer_rows.append(("sessions ingest", ingests["ndjson"], ingests["csv"]))
    reach = floor.reach_table(bounds, floor_cpu)
    report.write(args, results, peer_rows, probed, views, view_rows, floor_cpu, notes, reach)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def incremental(
    small: Export, wh: Path, work: Path, repeat: int, stored: int
) -> tuple[Result, Result]:
    """`small` into an empty warehouse, and into a copy of `wh` (which holds `stored`)."""
    sessions = str(BIN / "sessions")
    empty = repeated(
        f"{small.rows:,} into an empty warehouse",
        [sessions, "ingest", str(small.path), "-w", str(work / "empty"), "-q"],
        small.rows, small.size, repeat, reset=work / "empty",
    )  # fmt: skip
    runs = []
    for _ in range(repeat):
        # The warehouse from above, copied so that every repeat starts from it.
        target = work / "wh_copy"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(wh, target, symlinks=True)
        runs.append(measure([sessions, "ingest", str(small.path), "-w", str(target), "-q"]))
    shutil.rmtree(work / "wh_copy", ignore_errors=True)
    result = Result(
        f"{small.rows:,} into a {stored:,}-session warehouse",
        small.rows,
        small.size,
        statistics.median(r[0] for r in runs),
        max(r[1] for r in runs),
        statistics.median(r[2] for r in runs),
        reference=empty.case,
        time_ratio=True,
    )
    print(f"  {result.case}: {result.seconds:.2f} s", flush=True)
    return empty, result


def view_times(database: Path) -> list[list[str]]:
    views = [
        "agent_duration_stats",
        "channel_duration_stats",
        "prompt_version_duration_stats",
        "agent_daily_duration_stats",
        "prompt_version_changes",
    ]
    code = f"""
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
    output = subprocess.run(python(code), check=True, capture_output=True, text=True).stdout
    measured = [line.split() for line in output.splitlines()]
    for view, seconds in measured:
        print(f"  {view}: {float(seconds):.3f} s", flush=True)
    return measured


def compare_times(wh: Path) -> list[list[str]]:
    """`sessions compare` (the whole command: views opened, samples read, statistics) over the
    same warehouse, median of 3 runs."""
    measured = []
    for by in ("prompt-version", "experiment"):
        command = [str(BIN / "sessions"), "compare", "-w", str(wh), "--by", by, "--format", "csv"]
        runs = []
        for _ in range(3):
            started = time.monotonic()
            subprocess.run(command, check=True, capture_output=True)
            runs.append(time.monotonic() - started)
        seconds = statistics.median(runs)
        print(f"  sessions compare --by {by}: {seconds:.3f} s", flush=True)
        measured.append([f"sessions compare --by {by} (the command)", str(seconds)])
    return measured


if __name__ == "__main__":
    main()
