"""Turn JSON texts (NDJSON lines or array elements) into raw session columns, in DuckDB.

DuckDB's JSON functions parse each text once, in C++, a batch at a time: every text becomes
exactly one row per session it holds (one, or the items of an API page), with the text of each
known field, the names of the keys it had, the fields the schema does not know, and, where it is
not a JSON object, why. Typing the values is the transform's job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from itertools import pairwise

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from schemas import SESSION_FIELDS, key_aliases, repeated_fields

# A record may hold this many fields the schema does not know, kept in `extra_fields`; one
# with more is rejected as `too_many_fields` (an export does not add a thousand fields: such
# a record is a map written out as keys, which no query of sessions wants as columns).
MAX_UNKNOWN_FIELDS = 1000
# Up to this many unknown fields are read one at a time, each a parse of the record (the
# fastest way for a few); more are read all in one parse (a parse a key made a record of
# thousands of keys cost their square).
FEW_UNKNOWN_FIELDS = 32
# A record above this size is read alone, on a connection of its own with more memory than
# the ingest's (`LARGE_RECORD_MEMORY`): DuckDB's JSON writer reserves six to eight times a
# value's size at once, which a 20 MB text field would take beyond the ingest's cap. Its
# unknown fields are read one at a time (all at once, they cost more memory again), so it
# may hold no more than `FEW_UNKNOWN_FIELDS` of them.
LARGE_RECORD_BYTES = 4 << 20
LARGE_RECORD_MEMORY = "1GB"
# Text one extraction query reads at most: DuckDB's JSON functions hold several copies of a
# batch's texts, and 16 MB of records with a 10 kB field the schema does not know ran out of
# the ingest's default 320 MB (8 MB of them fits, whatever the records' size).
PART_BYTES = 8 << 20

# What every reader yields besides the session fields (all text) and `extra_fields`:
# `_keys` the keys a JSON object had (null where they are the batch's usual keys, which are
# known and each given once), `_line`/`_element`/`_item` its place in the file,
# `_record` the text as received (its line end may remain), `_error`/`_error_detail` why it
# could not be read.
META_COLUMNS = (
    "extra_fields",
    "_keys",
    "_line",
    "_element",
    "_item",
    "_record",
    "_error",
    "_error_detail",
)


# One query text per set of usual keys: an export has one or a few.
@lru_cache(maxsize=32)
def _extract_sql(from_bytes: bool, pages: bool, usual: tuple[str, ...]) -> str:
    # `items` is read as JSON text, to tell an API page from a session in the same parse.
    spec = json.dumps({**{alias: "VARCHAR" for alias in key_aliases()}, "items": "JSON"})
    known = ", ".join(f"'{alias}'" for alias in key_aliases())
    columns = ",\n    ".join(_field_column(f.name, f.camel) for f in SESSION_FIELDS)
    # Each text is parsed twice, for its keys and for its fields; `try` turns a text that is
    # not JSON into nulls instead of failing the batch. Only the rare text without keys is
    # parsed once more, to say what it is.
    parse = f"try(json_keys(_text)) AS _keys, try(json_transform(_text, '{spec}')) AS _f"
    kind = (
        "CASE WHEN _keys IS NULL THEN NULL WHEN len(_keys) = 0 THEN json_type(_text) "
        "ELSE 'OBJECT' END"
    )
    # Where pages and records both read the parsed texts, they are materialised, so that each
    # text is parsed once; read once, materialising them would cost a tenth of the query.
    materialised = "MATERIALIZED" if pages else ""
    # A constant, not a parameter: compared with a parameter, the keys cost as much as before.
    usual_keys = (
        "[" + ", ".join("'" + key.replace("'", "''") + "'" for key in usual) + "]::VARCHAR[]"
    )
    return f"""
WITH decoded AS ({_DECODE_BYTES if from_bytes else "SELECT * FROM batch"}),
tops AS {materialised} (
  SELECT _line, _element, _text, _error, _error_detail,
    -- As read, line end included: trimming every row costs more than trimming the rejected.
    coalesce(_text, _raw) AS _record, {parse}
  FROM decoded
),
{_PAGE_ITEMS.format(parse=parse, is_page=_IS_PAGE) if pages else _NO_PAGES}
typed AS (SELECT *, {kind} AS _type FROM records),
unknown AS (
  SELECT *, CASE WHEN _keys <> {usual_keys} THEN
      list_distinct(list_filter(_keys, lambda k: NOT list_contains([{known}], k))) END
    AS _unknown
  FROM typed
),
bounded AS (
  SELECT *, CASE WHEN len(_unknown) > {MAX_UNKNOWN_FIELDS}
      OR (len(_unknown) > {FEW_UNKNOWN_FIELDS} AND strlen(_text) > {LARGE_RECORD_BYTES})
    THEN format('{{:,}} fields the schema does not know, more than a record may have',
                len(_unknown)) END AS _too_many
  FROM unknown
)
SELECT
    {columns},
    CASE WHEN _too_many IS NULL AND len(_unknown) > 0 THEN {_EXTRA_FIELDS} END AS extra_fields,
    CASE WHEN _type = 'OBJECT' AND _keys <> {usual_keys} THEN _keys END AS _keys,
    _line, _element, _item, _record,
    coalesce(_error, CASE WHEN _keys IS NULL THEN 'invalid_json'
                          WHEN _type <> 'OBJECT' THEN 'not_an_object'
                          WHEN _too_many IS NOT NULL THEN 'too_many_fields' END) AS _error,
    coalesce(_error_detail, {_kind("_type")}, _too_many) AS _error_detail
FROM bounded
"""


# The unknown fields of a record as one JSON object, written as `to_json` writes a map.
_EXTRA_FIELDS = f"""'{{' || array_to_string(
    CASE WHEN len(_unknown) <= {FEW_UNKNOWN_FIELDS} OR strlen(_text) > {LARGE_RECORD_BYTES}
      THEN list_transform(_unknown, lambda k: to_json(k)::VARCHAR || ':' || coalesce(
        json_extract(_text, '/' || replace(replace(k, '~', '~0'), '/', '~1'))::VARCHAR, 'null'))
      ELSE list_transform(
        list_filter(map_entries(try(_text::JSON::MAP(VARCHAR, JSON))),
                    lambda e: list_contains(_unknown, e.key)),
        lambda e: to_json(e.key)::VARCHAR || ':' || coalesce(e.value::VARCHAR, 'null'))
    END, ',') || '}}'"""


# The items of API pages become records of their own. A batch that cannot hold a page goes
# without this part, which costs a sixth of the query even when no text is a page.
_IS_PAGE = """coalesce(starts_with(_f.items, '[')
    AND len(list_filter(_keys, lambda k: k = 'items')) = 1, false)"""

# A page names `items` once: an object naming it twice is a record with a key given twice
# (rejected as such), not a page whose other list of items would be lost unseen.
_PAGE_ITEMS = """pages AS (
  SELECT _line, _element, _f.items AS _items FROM tops WHERE {is_page}
),
items AS (
  SELECT _line, _element, _item, _text, NULL AS _error, NULL AS _error_detail,
    _text AS _record, {parse}
  FROM (
    -- Each page's items parsed once: their places come from the list, not another parse.
    SELECT _line, _element,
      unnest(_list)::VARCHAR AS _text,
      generate_subscripts(_list, 1) - 1 AS _item
    FROM (SELECT _line, _element, json_extract(_items, '$[*]') AS _list FROM pages)
  )
),
records AS (
  SELECT _line, _element, NULL::BIGINT AS _item, * EXCLUDE (_line, _element) FROM tops
  WHERE NOT {is_page}
  UNION ALL BY NAME
  SELECT * FROM items
),"""

_NO_PAGES = """records AS (
  SELECT _line, _element, NULL::BIGINT AS _item, * EXCLUDE (_line, _element) FROM tops
),"""


# No ORDER BY: sorting cost as much as parsing, and nothing downstream needs the file's order
# (each row carries its place; deduplication and the quarantine sort by it).


# Lines come as bytes: a line that is not UTF-8 is rejected alone, kept with its bytes escaped.
# A line the splitter could not read whole comes with its `_error`: it is not parsed.
_DECODE_BYTES = """
  SELECT _line, _element, CASE WHEN _error IS NULL THEN _text END AS _text,
    coalesce(_error, CASE WHEN _text IS NULL THEN 'invalid_utf8' END) AS _error, _error_detail,
    CASE WHEN _text IS NULL OR _error IS NOT NULL THEN coalesce(_text, CAST(_bytes AS VARCHAR))
    END AS _raw
  FROM (SELECT _line, _element, _bytes, _error, _error_detail, try(decode(_bytes)) AS _text
        FROM batch)
"""


def _kind(json_type: str) -> str:
    """SQL naming what a JSON value that is not an object is, for a rejection's detail."""
    return f"""CASE
      WHEN {json_type} IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN 'a number'
      WHEN {json_type} = 'VARCHAR' THEN 'a string'
      WHEN {json_type} = 'BOOLEAN' THEN 'a boolean'
      WHEN {json_type} = 'ARRAY' THEN 'an array'
      WHEN {json_type} = 'NULL' THEN 'null'
      WHEN {json_type} <> 'OBJECT' THEN lower({json_type}) END"""


def _field_column(name: str, camel: str) -> str:
    # The snake_case key wins over the camelCase one; a record with both is rejected later.
    spellings = ", ".join(f'_f."{key}"' for key in dict.fromkeys((name, camel)))
    return f'coalesce({spellings}) AS "{name}"'


_PAGES_SQL = """
SELECT _element, _line,
  json_array_length(_page.items) AS items,
  TRY_CAST(_page.page AS BIGINT) AS page,
  TRY_CAST(_page.page_size AS BIGINT) AS page_size,
  TRY_CAST(_page.total_count AS BIGINT) AS total_count
FROM (
  -- One parse of each page for its counts, and one of its items to count them.
  SELECT _element, _line, try(json_transform(_text,
    '{{"items": "JSON", "page": "VARCHAR", "page_size": "VARCHAR", "total_count": "VARCHAR"}}'))
    AS _page, try(json_keys(_text)) AS _keys
  FROM {source}
)
-- A page as the extraction takes one (`_IS_PAGE`): a text naming `items` twice is a record.
WHERE starts_with(_page.items, '[') AND len(list_filter(_keys, lambda k: k = 'items')) = 1
ORDER BY _element
"""


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> Iterator[None]:
    """`batch` as the relation `batch` on `con`, while the block runs."""
    # In vector-sized pieces, so that DuckDB parses on every core, not one (twice as fast).
    pieces = batch.to_batches(max_chunksize=2048)
    con.register("batch", pa.Table.from_batches(pieces, schema=batch.schema))
    try:
        yield
    finally:
        con.unregister("batch")


def extract(con: duckdb.DuckDBPyConnection, batch: pa.Table, *, pages: bool = True) -> pl.DataFrame:
    """Raw session columns of `batch`, one row per session it holds.

    `batch` has `_line` and `_element` (each text's place in the file) and either `_bytes`
    (the text as read) or `_text` (the JSON text); it may have `_error` and `_error_detail`
    (why a text could not be read: it is not parsed). Without `pages`, no text is taken for
    an API page: say so only of a batch known to hold none.
    """
    from_bytes = "_bytes" in batch.column_names
    for name in ("_error", "_error_detail") if from_bytes else ("_error", "_error_detail", "_raw"):
        if name not in batch.column_names:
            batch = batch.append_column(name, pa.nulls(len(batch), pa.string()))
    with _by_size(con, batch) as parts:
        frames = [
            _extracted(part_con, part, _extract_sql(from_bytes, pages, _usual_keys(_first(part))))
            for part_con, part in parts
        ]
    return frames[0] if len(frames) == 1 else pl.concat(frames)


def _first(batch: pa.Table) -> bytes | str | None:
    column = "_bytes" if "_bytes" in batch.column_names else "_text"
    first: bytes | str | None = batch.column(column)[0].as_py() if len(batch) else None
    return first


def _extracted(con: duckdb.DuckDBPyConnection, batch: pa.Table, sql: str) -> pl.DataFrame:
    with _registered(con, batch):
        result = con.sql(sql).to_arrow_table()
    return pl.from_arrow(result)  # type: ignore[return-value]


@contextmanager
def _by_size(
    con: duckdb.DuckDBPyConnection, batch: pa.Table
) -> Iterator[list[tuple[duckdb.DuckDBPyConnection, pa.Table]]]:
    """`batch` in parts, each with the connection to read it on: the whole on `con`, unless
    it has large records (rare); then each of those alone, on a connection of its own."""
    texts = batch.column("_bytes" if "_bytes" in batch.column_names else "_text")
    sizes = pc.binary_length(texts)
    large = pc.greater(sizes, LARGE_RECORD_BYTES)
    if not pc.any(large).as_py():
        yield _parts(con, batch, sizes)
        return
    large_rows = batch.filter(large)
    small = pc.invert(large)
    with _large_record_connection() as own:
        yield _parts(con, batch.filter(small), pc.filter(sizes, small)) + [
            (own, large_rows.slice(i, 1)) for i in range(len(large_rows))
        ]


def _parts(
    con: duckdb.DuckDBPyConnection, batch: pa.Table, sizes: pa.Array
) -> list[tuple[duckdb.DuckDBPyConnection, pa.Table]]:
    """`batch` in slices of at most about `PART_BYTES` of text, each read on `con`."""
    total = pc.sum(sizes).as_py() or 0
    if total <= PART_BYTES:
        return [(con, batch)]
    ends = np.searchsorted(
        np.cumsum(sizes.to_numpy(zero_copy_only=False)),
        np.arange(PART_BYTES, total, PART_BYTES),
        side="right",
    )
    cuts = [0, *sorted({int(e) for e in ends if 0 < e < len(batch)}), len(batch)]
    return [(con, batch.slice(a, b - a)) for a, b in pairwise(cuts)]


@contextmanager
def _large_record_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB of its own, for reading large records: more memory, one thread,
    nothing spilled to disk (a temporary folder would land in the working directory)."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{LARGE_RECORD_MEMORY}'")
        con.execute("SET threads = 1")
        con.execute("SET temp_directory = ''")
        yield con
    finally:
        con.close()


class _Pairs(list[tuple[str, object]]):
    """A JSON object's members in order, repeated keys included."""


def _usual_keys(text: bytes | str | None) -> tuple[str, ...]:
    """The keys of `text` if it is a JSON object whose keys are all known, each given once;
    else none. An export writes most of its records with the same keys: a record with the
    first one's need not have its keys checked again (which costs a sixth of the query)."""
    if not text or len(text) > 1 << 20:
        return ()
    try:
        found = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return ()
    if not isinstance(found, _Pairs):
        return ()
    keys = tuple(key for key, _ in found)
    known = key_aliases()
    if not all(key in known for key in keys) or repeated_fields(keys):
        return ()
    return keys


def sessions_of(
    con: duckdb.DuckDBPyConnection,
    batch: pa.Table,
    warn: Callable[[str], None],
    *,
    pages: bool = True,
) -> pl.DataFrame:
    """`extract`, and a warning for every API page among the texts that disagrees with itself."""
    raw = extract(con, batch, pages=pages)
    # A page gives its items' rows, and a page of no items no row (every other text gives
    # one): so only a batch with items, or fewer rows than texts, holds a page.
    if raw["_item"].is_not_null().any() or len(raw) < len(batch):
        for warning in page_warnings(con, batch):
            warn(warning)
    return raw


def page_warnings(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> list[str]:
    """What the API pages among `batch`'s texts say that disagrees with their items."""
    source = "(" + _DECODE_BYTES + ")" if "_bytes" in batch.column_names else "batch"
    for name in ("_error", "_error_detail"):
        if name not in batch.column_names:
            batch = batch.append_column(name, pa.nulls(len(batch), pa.string()))
    rows = []
    with _by_size(con, batch) as parts:
        for part_con, part in parts:
            with _registered(part_con, part):
                rows += part_con.sql(_PAGES_SQL.format(source=source)).fetchall()
    return [w for row in sorted(rows) if (w := _page_warning(*row))]


def _page_warning(
    element: int,
    line: int | None,
    items: int,
    page: int | None,
    page_size: int | None,
    total_count: int | None,
) -> str:
    where = f"line {line}" if line is not None else f"element {element + 1}"
    if page_size is not None and items > page_size:
        return f"{where}: page {page} has {items} items, more than its page_size {page_size}"
    if None in (page, page_size, total_count):
        return ""
    assert page is not None and page_size is not None and total_count is not None
    expected = min(max(total_count - page * page_size, 0), page_size)
    if items != expected:
        return (
            f"{where}: page {page} has {items} items; page_size {page_size} and "
            f"total_count {total_count} say {expected}"
        )
    return ""
