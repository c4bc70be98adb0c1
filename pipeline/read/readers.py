"""Which reader reads a file, and the batches it gives: the fast readers where they may try,
the exact reader where they cannot (or may not: `SESSIONS_EXACT_READER`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl

from pipeline import memory, views
from pipeline.progress import text_size
from pipeline.read import fast, fast_csv, fast_ndjson, fast_pages, read_export
from pipeline.read.gather import gathered
from pipeline.read.source import Format, Source

# The exact reader for every file: what the fast ones are tested against.
EXACT_ENV = "SESSIONS_EXACT_READER"

# How a file is read: fast (each line parsed as is), fast with every line parsed under `try`
# (a file with a line that is not JSON), and exact (anything either cannot read as it is).
FAST, FAST_TOLERANT, EXACT = "fast", "fast, tolerant", "exact"
# The same for a file of API pages, one a line.
PAGES, PAGES_TOLERANT = "fast pages", "fast pages, tolerant"

# Room for DuckDB to read ahead while the ingest validates and stages a batch: at its
# default (10 MiB, about 35,000 typed rows) its threads waited for every batch.
STREAMING_BUFFER = "64MB"


def attempts(source: Source) -> list[str]:
    """The ways to try, in order; each but the last may give up (`fast.Fallback`)."""
    if os.environ.get(EXACT_ENV, "") not in ("", "0"):
        return [EXACT]
    if fast_ndjson.eligible(source):
        if fast_ndjson.tolerance_needed(source):
            return [FAST_TOLERANT, EXACT]
        return [FAST, FAST_TOLERANT, EXACT]
    if fast_pages.eligible(source):
        if fast_ndjson.tolerance_needed(source):
            return [PAGES_TOLERANT, EXACT]
        return [PAGES, PAGES_TOLERANT, EXACT]
    if fast_csv.header(source) is not None:
        return [FAST, EXACT]
    return [EXACT]


def batches(
    source: Source,
    attempt: str,
    con: duckdb.DuckDBPyConnection,
    warn: Callable[[str], None],
    counter: fast.LineCounter | None = None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """`source`'s rows read the `attempt` way, in batches: ("typed", rows ready for
    validation) or ("raw", text for the transform). A fast attempt needs `fast_connection`.
    `counter`: the file's `line_counter`, started, if the caller has one (else a fast reader
    counts the lines itself)."""
    if attempt == EXACT:
        return (("raw", frame) for frame in gathered(read_export(source, con, warn)))
    if attempt in (PAGES, PAGES_TOLERANT):
        tolerant = attempt == PAGES_TOLERANT
        return fast_pages.read(source, con, warn, tolerant=tolerant, counter=counter)
    names = fast_csv.header(source) if source.format is Format.CSV else None
    if names is not None:
        return fast_csv.read(source, con, warn, names, counter)
    tolerant = attempt == FAST_TOLERANT
    return fast_ndjson.read(source, con, warn, tolerant=tolerant, counter=counter)


def line_counter(source: Source, *, hashed: bool) -> fast.LineCounter:
    """A count of `source`'s lines for the fast readers (with what they refuse), not started;
    `hashed`: hashing the file in the same pass (a `fast.plain` file only)."""
    refused = fast_csv.REFUSED if source.format is Format.CSV else ()
    return fast.LineCounter(source, refused, hashed=hashed)


def fast_connection(spill: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB of its own for a fast reader: it keeps the file's order (the ingest's
    connection does not), in UTC, within the ingest's memory budget, spilling into `spill`."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory.parse(memory_limit)}'")
    con.execute(f"SET temp_directory = {views.quote(str(spill))}")
    con.execute(f"SET streaming_buffer_size = '{STREAMING_BUFFER}'")
    # The rows' places are counted as they come: DuckDB 2.0's rewrite of an IN list of six or
    # more constants (the CSV reader's null spellings) into a join gave a file's rows out of
    # order, whatever `preserve_insertion_order` says (the CSV reader's rows from row 0).
    con.execute("SET disabled_optimizers = 'in_clause'")
    return con


def fraction_read(
    source: Source, attempt: str, con: duckdb.DuckDBPyConnection
) -> Callable[[pl.DataFrame], float]:
    """How much of the file is read, after each batch, for the progress display: DuckDB's own
    progress of a fast reader's query; for the exact reader, the text of the records read
    of the file's text (unpacked)."""
    if attempt != EXACT:
        last = [0.0]

        def by_duckdb(raw: pl.DataFrame) -> float:
            # -1 where DuckDB cannot tell; never backwards.
            last[0] = max(last[0], min(con.query_progress(), 100.0) / 100)
            return last[0]

        return by_duckdb
    total = max(text_size(source.path, source.gzipped), 1)
    read = [0]

    def by_text(raw: pl.DataFrame) -> float:
        read[0] += int(raw["_record"].str.len_bytes().sum() or 0)
        return min(read[0] / total, 1.0)

    return by_text
