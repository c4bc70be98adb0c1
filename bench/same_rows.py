"""Whether two builds of `sessions` store the same rows: the proof a rewrite of the ingest owes.

    python bench/same_rows.py OLD_SESSIONS NEW_SESSIONS EXPORT... [--work DIR]

Ingests the exports with each build (two `sessions` executables, e.g. the project at the
commit before the rewrite, checked out and set up beside this one) into a warehouse of its
own, with the same pseudonymisation key, and compares what they stored, column by column: the
sessions (all but `ingested_at`, the time of the run) and the quarantined rows (all but
`ingested_at` and `run_id`), each in a canonical order. Exits 1 and names the first column
that differs, if any does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from pipeline.store import reader

KEY = "same-rows comparison key, 32 bytes or longer"


def stored(warehouse: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The current version's sessions and quarantine, without what differs per run."""
    _, version = reader.version(str(warehouse))
    sessions = pl.read_parquet([f.location for f in version.session_files()]).drop("ingested_at")
    # The files of the version, from the Delta log (a glob would also read replaced files).
    files = [f.location for f in version.reject_files()]
    rejected = (
        pl.read_parquet(files)
        .filter(pl.col("run_id").is_in(version.runs))
        .drop("ingested_at", "run_id")
        if files
        else pl.DataFrame()
    )
    if len(rejected):
        rejected = rejected.sort(rejected.columns, nulls_last=True)
    return sessions.sort(sessions.columns, nulls_last=True), rejected


def differences(a: pl.DataFrame, b: pl.DataFrame) -> list[str]:
    if a.columns != b.columns:
        return [f"columns: {a.columns} vs {b.columns}"]
    if a.shape != b.shape:
        return [f"rows: {len(a):,} vs {len(b):,}"]
    return [c for c in a.columns if not a[c].equals(b[c], null_equal=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", help="the `sessions` executable of the build before")
    parser.add_argument("new", help="the `sessions` executable of this build")
    parser.add_argument("exports", nargs="+")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="same-rows-"))
    env = {**os.environ, "SESSIONS_PII_KEY": KEY}
    # Absolute: a build may run from a folder of its own (its checkout), where a relative path
    # names that checkout's file of the same name (its own bundled sample, say), not this one.
    exports = [str(Path(e).resolve()) for e in args.exports]
    found = []
    for name, executable in (("old", args.old), ("new", args.new)):
        warehouse = work / name
        subprocess.run(
            [executable, "ingest", *exports, "-w", str(warehouse), "-q"], check=True, env=env
        )
        found.append(stored(warehouse))
    (old_sessions, old_rejects), (new_sessions, new_rejects) = found
    failed = False
    for what, a, b in (
        ("sessions", old_sessions, new_sessions),
        ("rejects", old_rejects, new_rejects),
    ):
        differ = differences(a, b)
        print(f"{what}: {len(a):,} rows, {len(a.columns)} columns: "
              + ("identical" if not differ else f"DIFFER in {', '.join(differ)}"))  # fmt: skip
        failed |= bool(differ)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
