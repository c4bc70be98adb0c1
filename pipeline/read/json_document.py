"""JSON document exports: an array of sessions, an array of API pages, or one API page."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.errors import InputError
from pipeline.read import json_records
from pipeline.read.source import Format, Source

BATCH_ROWS = 50_000
# One element (a session, or a whole page) may be this large; DuckDB reserves twice this.
MAX_ELEMENT_BYTES = 128 << 20

# DuckDB's reader streams the elements of a top-level array; a top-level object is one element.
_ELEMENTS_SQL = """
SELECT coalesce(j::VARCHAR, 'null') AS _text
FROM read_json($path, format = $format, records = false, columns = {'j': 'JSON'},
               compression = $compression, maximum_object_size = $max_bytes)
"""


def read(
    source: Source, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="sessions-read-") as tmp:
        params = {
            "path": _unglobbed(source.path, Path(tmp)),
            "format": "array" if source.format is Format.JSON_ARRAY else "unstructured",
            "compression": "gzip" if source.gzipped else "none",
            "max_bytes": MAX_ELEMENT_BYTES,
        }
        # The elements stream from a cursor of their own: `con` serves the extraction.
        cursor = con.cursor()
        try:
            reader = cursor.sql(_ELEMENTS_SQL, params=params).to_arrow_reader(BATCH_ROWS)
            element = 0
            for chunk in reader:
                n = chunk.num_rows
                batch = pa.table(
                    {
                        "_text": chunk.column("_text"),
                        "_line": pa.nulls(n, pa.int64()),
                        "_element": np.arange(element, element + n, dtype=np.int64),
                    }
                )
                element += n
                yield json_records.sessions_of(con, batch, warn)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            # Errors found while streaming reach us through Arrow's reader, as OSError.
            raise InputError(source.path, _first_line(exc)) from None
        finally:
            cursor.close()


def _unglobbed(path: Path, tmp: Path) -> str:
    """A name for `path` that DuckDB will not read as a glob pattern."""
    if not any(c in str(path) for c in "*?[]{}"):
        return str(path)
    link = tmp / "export"
    os.symlink(path.resolve(), link)
    return str(link)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0]
    return re.sub(r' in file "[^"]*"', "", text.removeprefix("Invalid Input Error: "))
