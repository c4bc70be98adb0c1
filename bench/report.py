"""The results of one run as Markdown: printed, and written to bench/results.md."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from floor import floor_table
from measure import Result
from probe import Probed, checks_column
from targets import mark, ratio


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


def write(
    args: argparse.Namespace,
    results: list[Result],
    peers: list[tuple[str, Result | None, Result | None]],
    probed: list[Probed],
    views: list[list[str]],
    view_rows: int,
    floor: dict[str, float],
    notes: list[str],
    reach: Sequence[str] = (),
) -> None:
    by_case = {r.case: r for r in results}
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make bench` with scale {args.scale}, "
        f"median of {args.repeat} runs (1 run for the 5x case"
        + (
            "; DuckDB's reference of the NDJSON and the CSV twice as many: before and after the "
            "peers"
            if peers
            else ""
        )
        + "). Each ratio is a speed ratio to "
        "DuckDB's bare `COPY (SELECT * FROM read_json|read_csv(file)) TO '...parquet'` of the "
        "same file in this run (its seconds / the case's seconds); targets from issue #14.",
        f"Machine: {machine()}.",
        "",
        "| case | rows | wall s | CPU s | MB/s | peak RSS MiB | ratio | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        measured = ratio(r, by_case)
        shown = f"{measured:.2f}x" if measured is not None else ""
        if r.time_ratio and r.reference in by_case:
            shown = f"{r.seconds / by_case[r.reference].seconds:.2f}x the time"
        lines.append(
            f"| {r.case} | {r.rows:,} | {r.seconds:.2f} | {r.cpu_seconds:.2f} | "
            f"{r.mb_per_s:,.0f} | {r.peak_rss / 2**20:,.0f} | {shown} | {r.target} | "
            f"{mark(r.met)} |"
        )
    lines += _peers_table(peers, probed, by_case)
    lines += [*([""] + [f"- {note}" for note in notes] if notes else [])]
    lines += [
        "",
        f"Stats views over {view_rows:,} sessions, warm, median of 5; `sessions compare` over "
        "the same, the whole command, median of 3:",
        "",
    ]
    lines += ["| view | seconds |", "|---|---:|"]
    lines += [f"| {view} | {float(seconds):.3f} |" for view, seconds in views]
    reference = by_case.get("DuckDB read_json -> parquet (ndjson)")
    if floor and reference is not None:
        lines += floor_table(reference, floor)
    lines += list(reach)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.write_text(text)
    print(f"written to {args.out}")


def _peers_table(
    peers: list[tuple[str, Result | None, Result | None]],
    probed: list[Probed],
    by_case: dict[str, Result],
) -> list[str]:
    """One row a peer: its ratio on NDJSON and CSV, its peak RSS, and what the 16-line probe
    measured it checks; `sessions ingest` last, on the same files."""
    if not peers:
        return []

    def checks(name: str) -> str:
        # The strict run, then any lenient ones ("<name>, lenient...").
        runs = [p for p in probed if p.name == name or p.name.startswith(name + ", ")]
        return (
            "; ".join(
                (p.name.removeprefix(name + ", ") + ": " if p.name != name else "")
                + checks_column(p)
                for p in runs
            )
            or "not probed"
        )

    lines = [
        "",
        "Peers, same files, each its own process (ratios as above; met: `sessions ingest` of the "
        "same file is faster). What it checks: measured on a 16-line NDJSON file with one defect "
        "a line (`bench/probe.py`).",
        "",
        "| peer | NDJSON | CSV | peak RSS MiB | ahead of it | what it checks (16-line probe) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, ndjson, csv in peers:
        cells = []
        for r in (ndjson, csv):
            measured = ratio(r, by_case) if r else None
            cells.append(f"{measured:.2f}x" if measured is not None else "not run")
        peaks = [f"{r.peak_rss / 2**20:,.0f}" for r in (ndjson, csv) if r]
        met = [r.met for r in (ndjson, csv) if r]
        # The ingest's own row: its targets are in the table above, not "ahead of itself".
        ahead = "" if not met or None in met or name == "sessions ingest" else mark(all(met))
        lines.append(
            f"| {name} | {cells[0]} | {cells[1]} | {' / '.join(peaks)} | {ahead} | {checks(name)} |"
        )
    return lines
