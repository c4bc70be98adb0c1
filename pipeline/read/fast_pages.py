"""API pages one a line (NDJSON, as `sessions pull` and API dumps write them), fast.

One query reads the file's lines and parses each page once for its items' values, as text;
a second query types them where their layout leaves no doubt (`strict`), a batch of items
at a time. A page comes out as typed rows when every item has the file's usual keys and
every value is certain, and when its counts (`page`, `page_size`, `total_count`) agree with
its items. Every other line, and every page with one item declined, goes as its text the way
the exact reader reads it (`json_records`): it says what is wrong, warns where counts
disagree, and numbers the items. So the rows are the exact reader's, and only odd pages pay
for being odd.

The reader gives up on the file (`Fallback`) where the NDJSON fast reader does (a line
DuckDB's line reader cannot read, or a count of lines other than the independent count's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import lru_cache, partial

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.read import fast, fast_ndjson, json_records, strict
from pipeline.read.source import Format, Source, open_bytes
from schemas import FIELD_NAMES, key_aliases

# Lines DuckDB hands over at a time: a page of 100 items is about 80 kB of text.
LINES_AT_A_TIME = 256
# Text DuckDB's line reader reads at a time. Its chunks of rows end with a buffer: at its
# default a chunk of pages was 8 MB of text, and with the parsed items of two such chunks on
# each thread, kept in order, DuckDB ran out of the ingest's 320 MB.
BUFFER_BYTES = 4 << 20


def eligible(source: Source) -> bool:
    """Whether this reader may try `source`: NDJSON in UTF-8 whose first line is an API page
    whose first item has known keys, each given once."""
    if source.format is not Format.NDJSON or source.encoding != "utf-8":
        return False
    with open_bytes(source) as stream:
        return _item_keys(stream.read(fast.HEAD_BYTES)) != ()


def _item_keys(head: bytes) -> tuple[str, ...]:
    """The keys of the first item of the file's first line, if that line is an API page."""
    for line in head.split(b"\n"):
        if not line.strip(b" \t\r"):
            continue
        if len(line) == len(head) and len(head) >= fast.HEAD_BYTES:
            return ()  # a first line longer than the head: not this reader's
        try:
            page = json.loads(line)
        except (ValueError, RecursionError):
            return ()
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            return ()
        # Repeated keys of that item are lost here; the query finds them in every item.
        return json_records._usual_keys(json.dumps(items[0]))
    return ()


def read(
    source: Source,
    con: duckdb.DuckDBPyConnection,
    warn: Callable[[str], None],
    *,
    tolerant: bool = False,
    counter: fast.LineCounter | None = None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """The sessions of `source` in order, in batches, as `fast_ndjson.read` gives them (and
    on the same terms: `con` preserves insertion order; `NotJson`, `Fallback`)."""
    with open_bytes(source) as stream:
        usual = _item_keys(stream.read(fast.HEAD_BYTES))
    if not usual:
        raise fast.Fallback("the first line is not an API page of items with the usual keys")
    sql = _pages_sql(usual, tolerant, source.gzipped)
    split = partial(_split, usual=usual)
    yield from fast_ndjson.read_lines(
        source,
        con,
        warn,
        sql,
        split,
        tolerant=tolerant,
        lines_at_a_time=LINES_AT_A_TIME,
        rows_of=_sessions,
        counter=counter,
    )


def _sessions(batch: pa.RecordBatch) -> int:
    """The sessions a batch of lines holds: its pages' items, and a row for every other line.
    (Each page's text is held beside its items until the typing has taken them, so that a
    page it declines can go the exact way: `fast.BATCH_BYTES` bounds both.)"""
    items: int = pc.sum(pc.list_value_length(batch.column("_items"))).as_py() or 0
    return items + int(batch.num_rows)


def _split(
    table: pa.Table,
    lines: int,
    elements: int,
    odd_con: duckdb.DuckDBPyConnection,
    odd_texts: fast.OddTexts,
    *,
    usual: tuple[str, ...],
) -> Iterator[tuple[str, pl.DataFrame]]:
    """One batch of lines, as the typed items of its clean pages and the text of the rest."""
    n = table.num_rows
    blank = table.column("_blank").to_numpy(zero_copy_only=False)
    line = np.arange(lines + 1, lines + n + 1, dtype=np.int64)
    element = elements + np.cumsum(~blank, dtype=np.int64) - 1
    items = table.column("_items").combine_chunks()
    paged = items.is_valid().to_numpy(zero_copy_only=False)
    if paged.any():
        lengths = pc.list_value_length(items).fill_null(0).to_numpy(zero_copy_only=False)
        parent = np.repeat(np.arange(n), lengths)
        item = np.arange(len(parent), dtype=np.int64) - (np.cumsum(lengths) - lengths)[parent]
        flat = items.flatten()
        columns = {key: flat.field(i) for i, key in enumerate(usual)}
        suspect = table.column("_suspect").to_numpy(zero_copy_only=False)
        columns["_suspect"] = pa.array(suspect[parent])
        odd_con.register("_page_items", pa.table(columns))
        try:
            typed = odd_con.sql(_typing_sql(usual)).to_arrow_table()
        finally:
            odd_con.unregister("_page_items")
        ok = typed.column("_ok").to_numpy(zero_copy_only=False)
        # A page with one item the typing declines goes whole to the exact way.
        declined = np.bincount(parent[~ok], minlength=n) > 0
        paged &= ~declined
        keep = paged[parent]
        if keep.any():
            rows = fast.rows_where(typed.select(FIELD_NAMES), keep)
            yield (
                "typed",
                fast.with_meta(rows, line[parent][keep], element[parent][keep], item[keep]),
            )
    odd = ~paged & ~blank
    if odd.any():
        texts = pa.table(
            {
                "_text": table.column("j").filter(pa.array(odd)),
                "_line": line[odd],
                "_element": element[odd],
            }
        )
        yield from odd_texts.add(texts)


# A page as `json_records` reads one: `items` named once, a list; and its counts, as
# `json_records.page_warnings` reads them, agreeing with its items (else it warns). Where a
# count is missing, only `page_size` is checked, as there: `greatest` and `least` pass over a
# null, and a page without counts seemed to disagree (every such page went the exact way).
_AGREE = """(
  NOT coalesce(TRY_CAST(_p.page_size AS BIGINT) < len(_p.items), false)
  AND NOT coalesce(
    TRY_CAST(_p.page AS BIGINT) IS NOT NULL AND TRY_CAST(_p.page_size AS BIGINT) IS NOT NULL
    AND TRY_CAST(_p.total_count AS BIGINT) IS NOT NULL
    AND len(_p.items) <> least(greatest(
        TRY_CAST(_p.total_count AS BIGINT)::HUGEINT
          - TRY_CAST(_p.page AS BIGINT)::HUGEINT * TRY_CAST(_p.page_size AS BIGINT),
        0), TRY_CAST(_p.page_size AS BIGINT)), false))"""


@lru_cache(maxsize=8)
def _pages_sql(usual: tuple[str, ...], tolerant: bool, gzipped: bool) -> str:
    item = dict.fromkeys(usual, "VARCHAR")
    spec = json.dumps(
        {"items": [item], "page": "VARCHAR", "page_size": "VARCHAR", "total_count": "VARCHAR"}
    )
    usual_list = fast.key_list(usual)
    # `json_transform` makes a struct of nulls of an item that is not an object; its keys
    # (none) tell it apart, as they tell an item with other keys.
    clean = f"""coalesce(len(_ik) = len(_p.items)
        AND len(list_filter(_ik, lambda k: k <> {usual_list})) = 0
        AND {_AGREE}, false)"""
    return f"""
SELECT _blank, _suspect, CASE WHEN {clean} THEN _p.items END AS _items,
  CASE WHEN NOT _blank THEN j END AS j
FROM (
  SELECT _blank, j, {fast_ndjson.SUSPECT} AS _suspect,
    CASE WHEN _page THEN json_keys(j, '$.items[*]') END AS _ik,
    CASE WHEN _page THEN json_transform(j, {fast.literal(spec)}) END AS _p
  FROM (
    SELECT j, _blank,
      coalesce(len(list_filter(_keys, lambda k: k = 'items')) = 1, false) AS _page
    FROM (
      SELECT j, _blank, CASE WHEN NOT _blank THEN {fast_ndjson.keys_sql(tolerant)} END AS _keys
      FROM ({fast_ndjson.lines_sql(gzipped, BUFFER_BYTES)})
    )
  )
)
"""


@lru_cache(maxsize=8)
def _typing_sql(usual: tuple[str, ...]) -> str:
    aliases = key_aliases()
    values = {aliases[key]: fast.quoted(key) for key in usual}
    selected, sure = strict.columns(values, "_suspect")
    texts = strict.texts(values, "_suspect", starts=True)
    return f"""
SELECT coalesce({sure}, false) AS _ok, {", ".join(selected)}
FROM (SELECT {", ".join(texts)} FROM _page_items)
"""
