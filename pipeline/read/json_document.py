"""JSON document exports: an array of sessions, an array of API pages, or one API page.

The document is cut into the texts of its sessions as it streams (`json_scan`), so its size
never matters: an API page of 200,000 sessions is read a few megabytes at a time, like NDJSON.
Each text keeps its place: its element of the document, and its item in a page.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.errors import InputError
from pipeline.read import json_records, records
from pipeline.read.json_scan import MAX_TEXT_BYTES, Batch, Malformed, scan
from pipeline.read.source import Format, Source, open_bytes

_MAX = f"the {MAX_TEXT_BYTES >> 20} MiB a record may have"
# An NDJSON line larger than this that is one API page is read item by item, as a
# document is: expanded in one query, a 20 MB page ran DuckDB out of memory under 320 MB.
LARGE_LINE_BYTES = 1 << 20


def read(
    source: Source, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    with open_bytes(source) as stream:
        try:
            for found in scan(stream, array=source.format is Format.JSON_ARRAY):
                if found.texts:
                    yield _sessions(con, found, warn)
                if found.pages:
                    _check_pages(con, found, warn)
                    if (repeated := _repeated_items(con, found)) is not None:
                        yield _sessions(con, repeated, warn)
        except Malformed as exc:
            raise InputError(source.path, f"Malformed JSON: {exc}") from None
        except OSError as exc:
            raise InputError(source.path, f"cannot read: {exc.strerror or exc}") from None


def is_one_page(text: bytes) -> bool:
    """Whether `text` (an NDJSON line) is a single API page whose outline is whole: only
    then can its items be read apart, each its own row."""
    pages = 0
    try:
        for found in scan(io.BytesIO(text), array=False):
            if (found.texts and found.elements[-1] > 0) or len(found.pages) > 1:
                return False
            pages += len(found.pages)
    except Malformed:
        return False  # one row, rejected as not JSON
    return pages == 1


def page_items(
    con: duckdb.DuckDBPyConnection,
    text: bytes,
    line: int,
    element: int,
    warn: Callable[[str], None],
) -> Iterator[pl.DataFrame]:
    """The items of `text`, one API page on `line` of an NDJSON file (see `is_one_page`)."""
    for found in scan(io.BytesIO(text), array=False):
        if found.texts:
            yield _sessions(con, found, warn, line, element)
        if found.pages:
            _check_pages(con, found, warn, line, element)
            if (repeated := _repeated_items(con, found)) is not None:
                yield _sessions(con, repeated, warn, line, element)


def _sessions(
    con: duckdb.DuckDBPyConnection,
    found: Batch,
    warn: Callable[[str], None],
    line: int | None = None,
    element: int | None = None,
) -> pl.DataFrame:
    """Raw session columns of the texts `found`; of one NDJSON line's page, if `line`."""
    n = len(found.texts)
    # Each text is numbered for the extraction, which keeps no order; the numbers then give
    # each row its element and item.
    batch = pa.table(
        {
            "_bytes": pa.array(found.texts, pa.large_binary()),
            "_line": pa.nulls(n, pa.int64()),
            "_element": np.arange(n, dtype=np.int64),
        }
    )
    # The scanner took every page apart: no text is a page (an item that looks like one is a
    # record, as in a page read whole).
    raw = json_records.sessions_of(con, batch, warn, pages=False)
    number = raw["_element"]
    elements = pl.Series(found.elements, dtype=pl.Int64)
    items = pl.Series(found.items, dtype=pl.Int64)
    items = pl.select(pl.when(items >= 0).then(items)).to_series()
    if element is not None:
        elements = pl.repeat(element, n, dtype=pl.Int64, eager=True)
    raw = raw.with_columns(
        pl.lit(line, pl.Int64).alias("_line"),
        elements.gather(number).alias("_element"),
        items.gather(number).alias("_item").cast(raw.schema["_item"]),
    )
    if found.too_large:
        # Kept as its first bytes: rejected for its size, whatever those bytes parse to.
        sizes = pl.Series([found.too_large.get(i) for i in range(n)], dtype=pl.Int64)
        size = sizes.gather(number)
        raw = raw.with_columns(
            pl.when(size.is_not_null())
            .then(pl.lit(records.TOO_LARGE))
            .otherwise("_error")
            .alias("_error"),
            pl.when(size.is_not_null())
            .then(pl.format("{} bytes, more than {}", size, pl.lit(_MAX)))
            .otherwise("_error_detail")
            .alias("_error_detail"),
        )
    return raw


def _check_pages(
    con: duckdb.DuckDBPyConnection,
    found: Batch,
    warn: Callable[[str], None],
    line: int | None = None,
    element: int | None = None,
) -> None:
    """A warning for each page whose items disagree with its counts, read by the rule a page
    read whole has (`json_records.page_warnings`)."""
    pages = pa.table(
        {
            "_text": [page.outline() for page in found.pages],
            "_line": pa.array([line] * len(found.pages), pa.int64()),
            "_element": pa.array(
                [page.element if element is None else element for page in found.pages],
                pa.int64(),
            ),
        }
    )
    for warning in json_records.page_warnings(con, pages):
        warn(warning)


def _repeated_items(con: duckdb.DuckDBPyConnection, found: Batch) -> Batch | None:
    """The pages of `found` that name `items` more than once, each as one text to reject: the
    page without the items that were read (each a `0`), so that the other `items` are kept
    in the quarantine, with the reason `items: duplicate_key`. The scanner reads the first
    array named `items` as the page's items; what follows it, another list of sessions
    included, is the page's tail, which no row held (a page read whole is one rejected row,
    as a record with a key twice)."""
    # Most pages name `items` once, without escapes: those are not parsed again.
    outlines = [
        (page.element, page.outline())
        for page in found.pages
        if (rest := page.head + page.tail).count(b"items") > 1 or b"\\" in rest
    ]
    if not outlines:
        return None
    texts = [outline for _, outline in outlines]
    con.register("_outlines", pa.table({"_n": range(len(texts)), "_text": texts}))
    try:
        repeated = {
            n
            for (n,) in con.sql("""
                SELECT _n FROM _outlines
                WHERE json_valid(_text)
                  AND len(list_filter(json_keys(_text), lambda k: k = 'items')) > 1
            """).fetchall()
        }
    finally:
        con.unregister("_outlines")
    if not repeated:
        return None
    batch = Batch()
    for n, (element, outline) in enumerate(outlines):
        if n in repeated:
            text = outline.encode()
            batch.add(text, len(text), element, -1)
    return batch
