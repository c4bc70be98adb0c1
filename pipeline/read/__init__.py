"""Readers: each export format in, batches of raw session columns (all text) out."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb
import polars as pl

from pipeline.read import csv, json_document, ndjson
from pipeline.read.json_records import META_COLUMNS
from pipeline.read.source import Format, Source, sniff

__all__ = ["META_COLUMNS", "Format", "Source", "read_export", "sniff"]

_READERS = {
    Format.NDJSON: ndjson.read,
    Format.JSON_ARRAY: json_document.read,
    Format.JSON_OBJECT: json_document.read,
    Format.CSV: csv.read,
}


def read_export(
    source: Source, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    """Batches of `source`'s sessions: the schema's fields as text, and `META_COLUMNS`.

    Every record of the file is one row, readable or not: a row that could not be read has
    `_error` set. A file that cannot be read at all raises `InputError`.
    """
    if source.format is Format.EMPTY:
        warn("the file is empty")
        return iter(())
    return _READERS[source.format](source, con, warn)
