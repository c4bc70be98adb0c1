"""NDJSON exports: one JSON object per line, a session or a whole API page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.read import json_document, json_records
from pipeline.read.records import iter_records
from pipeline.read.source import Source, open_bytes

# Reads that may hold API pages are extracted in this many pieces (see below).
PAGE_PIECES = 2


def read(
    source: Source, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    element = 0
    if warning := source.encoding_warning():
        warn(warning)
    with open_bytes(source) as stream:
        for records in iter_records(stream):
            n = len(records.data)
            columns = {
                "_bytes": records.data,
                "_line": records.line,
                "_element": np.arange(element, element + n, dtype=np.int64),
            }
            if records.errors:  # a line too large: only its start is here, not to be parsed
                columns["_error"], columns["_error_detail"] = records.error_columns()
            batch = pa.table(columns)
            element += n
            # A page has the key `items`, spelled so or with escapes (a one-byte search).
            may_hold_pages = records.may_contain(b"\\") or records.may_contain(b'"items"')
            if may_hold_pages:
                # A page too large to expand in one query is read item by item.
                large = pc.binary_length(records.data).to_numpy() > json_document.LARGE_LINE_BYTES
                pages = [
                    i
                    for i in np.flatnonzero(large)
                    if json_document.is_one_page(records.data[i].as_py())
                ]
                for i in pages:
                    line, at = int(records.line[i]), element - n + int(i)
                    yield from json_document.page_items(
                        con, records.data[i].as_py(), line, at, warn
                    )
                if pages:
                    batch = batch.filter(pa.array(~np.isin(np.arange(n), pages)))
                    n = len(batch)
            if may_hold_pages:
                # Pages expand into their items inside one query: a smaller piece at a time
                # keeps DuckDB within its memory (a whole 16 MB of pages ran it out).
                for piece in batch.to_batches(max_chunksize=max(1, n // PAGE_PIECES + 1)):
                    yield json_records.sessions_of(con, pa.table(piece), warn)
            elif n:
                yield json_records.sessions_of(con, batch, warn, pages=False)
