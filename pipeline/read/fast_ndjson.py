"""NDJSON, fast: DuckDB reads the file, parses each line once, and types what is certain.

One query reads the file's lines (DuckDB's CSV reader as a line reader, on both cores),
takes each line's keys, and, for a line with the file's usual keys, its values, typed where
their layout leaves no doubt (`strict`). Those rows come out typed. Every other line (keys
unknown, repeated, missing or in another order; a value in another layout; not JSON; not an
object; an API page) comes out as its text and goes the way every line went before this
reader: `json_records` turns it into raw columns, the transform types them. So the rows that
are odd pay for being odd, and only they.

The reader gives up on the file (`Fallback`) where DuckDB's line reader cannot be trusted to
see the file as the exact reader does: a line it cannot read (not UTF-8, too long, a carriage
return alone), or a count of lines other than the independent count's. The ingest then reads
the file with the exact reader, from the start.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import lru_cache

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.read import fast, json_records, strict
from pipeline.read.source import Format, Source, open_bytes
from schemas import FIELD_NAMES, key_aliases

# The most a line may have for DuckDB's line reader (its default is 2 MB); a longer one is
# the exact reader's (it reads up to 16 MB, and tells what is larger).
MAX_LINE_BYTES = 1 << 20


def eligible(source: Source) -> bool:
    """Whether the fast reader may try `source`: NDJSON in UTF-8 whose first line has the
    usual keys. (A byte order mark DuckDB drops, as the exact reader does.)"""
    if source.format is not Format.NDJSON or source.encoding != "utf-8":
        return False
    with open_bytes(source) as stream:
        return _usual_keys(stream.read(fast.HEAD_BYTES)) != ()


def tolerance_needed(source: Source) -> bool:
    """Whether a line of the file's head is not JSON: then the file is read `tolerant` from the
    start, rather than first as it is, to fail at that line and begin again (0.5 s of a 1M-line
    file where bad lines are spread). A line Python's parser and DuckDB's judge apart only
    picks the other of two readings that both give the same rows."""
    with open_bytes(source) as stream:
        head = stream.read(fast.HEAD_BYTES)
    lines = head.split(b"\n")
    if len(head) >= fast.HEAD_BYTES:
        lines = lines[:-1]  # the last may be cut short by the head's end
    for line in lines:
        if line.strip(b" \t\r"):
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                # Nested deeper than Python parses: DuckDB may read it, or not; read
                # tolerant, which gives the same rows either way.
                return True
    return False


def _usual_keys(head: bytes) -> tuple[str, ...]:
    """The keys of the file's first line, if they are known and each given once (see
    `json_records._usual_keys`)."""
    for line in head.split(b"\n"):
        if line.strip(b" \t\r"):
            if len(line) == len(head) and len(head) >= fast.HEAD_BYTES:
                return ()  # a first line longer than the head: not this reader's
            return json_records._usual_keys(line)
    return ()


def read(
    source: Source,
    con: duckdb.DuckDBPyConnection,
    warn: Callable[[str], None],
    *,
    tolerant: bool = False,
    counter: fast.LineCounter | None = None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """The sessions of `source` in order, in batches: ("typed", rows typed and ready for
    validation) or ("raw", rows as the exact readers give them, for the transform).
    `counter`: the file's line count, started, if the caller has one.

    `con` must preserve insertion order (the rows' places are counted as they come). Each
    line is parsed as it is; with `tolerant`, checked first (`json_valid`), which a file with
    a line that is not JSON needs (and pays for: one more parse). Raises `NotJson` (without
    `tolerant`) or `Fallback` where the file must be read again, so; what was yielded is
    then void.
    """
    with open_bytes(source) as stream:
        usual = _usual_keys(stream.read(fast.HEAD_BYTES))
    if not usual:
        raise fast.Fallback("the first line's keys are not the usual ones")
    sql = _sql(usual, tolerant, source.gzipped)
    yield from read_lines(source, con, warn, sql, _split, tolerant=tolerant, counter=counter)


# Splits one batch of a query's lines (with the lines and elements before it) into typed rows
# and odd texts: those to the odd texts given, which read them the exact way on the cursor
# given.
Split = Callable[
    [pa.Table, int, int, duckdb.DuckDBPyConnection, fast.OddTexts],
    Iterator[tuple[str, pl.DataFrame]],
]


def read_lines(
    source: Source,
    con: duckdb.DuckDBPyConnection,
    warn: Callable[[str], None],
    sql: str,
    split: Split,
    *,
    tolerant: bool,
    lines_at_a_time: int = fast.BATCH_ROWS,
    rows_of: Callable[[pa.RecordBatch], int] = len,
    counter: fast.LineCounter | None = None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """The batches `split` makes of `sql`'s rows: one a line of `source` (`$1`), in order,
    with `_blank`; batches of `fast.batches` (`rows_of` a batch of rows). The file's lines
    are counted apart, beside DuckDB (by `counter`, if given, started): a count other than
    DuckDB's is a `Fallback`, as is any failure of its reading (or `NotJson`, see
    `fast.read_failures`)."""
    if counter is None:
        counter = fast.LineCounter(source)
        counter.start()
    try:
        odd_con = con.cursor()
        odd = fast.OddTexts(odd_con, warn)
        lines = elements = 0
        try:
            with fast.read_failures(tolerant):
                result = con.sql(sql, params=[str(source.path)]).to_arrow_reader(lines_at_a_time)
                assert result is not None
                for table in fast.batches(result, rows_of):
                    yield from split(table, lines, elements, odd_con, odd)
                    lines, elements = advance(table, lines, elements)
                yield from odd.flush()
        finally:
            odd_con.close()
        counted = counter.result()
        if counted != lines:
            raise fast.Fallback(f"DuckDB read {lines} lines, the count says {counted}")
    finally:
        counter.join()


def advance(table: pa.Table, lines: int, elements: int) -> tuple[int, int]:
    """The lines and the elements (lines not blank) read, after `table`'s rows."""
    blank = table.column("_blank").to_numpy(zero_copy_only=False)
    return lines + len(blank), elements + int((~blank).sum())


def _split(
    table: pa.Table,
    lines: int,
    elements: int,
    odd_con: duckdb.DuckDBPyConnection,
    odd_texts: fast.OddTexts,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """One batch of the query's rows, as typed rows and odd rows, each with its place."""
    n = table.num_rows
    blank = table.column("_blank").to_numpy(zero_copy_only=False)
    ok = table.column("_ok").to_numpy(zero_copy_only=False)
    line = np.arange(lines + 1, lines + n + 1, dtype=np.int64)
    element = elements + np.cumsum(~blank, dtype=np.int64) - 1
    if ok.any():
        typed = fast.rows_where(table.select(FIELD_NAMES), ok)
        yield "typed", fast.with_meta(typed, line[ok], element[ok])
    odd = ~ok & ~blank
    if odd.any():
        texts = pa.table(
            {
                "_text": table.column("j").filter(pa.array(odd)),
                "_line": line[odd],
                "_element": element[odd],
            }
        )
        yield from odd_texts.add(texts)


# The exact reader's blank line holds only spaces, tabs and carriage returns.
BLANK = (
    "CASE WHEN starts_with(j, '{') THEN false WHEN j IS NULL THEN true "
    "ELSE trim(j, ' ' || chr(9) || chr(13)) = '' END"
)
# A value may end with a blank only where a space meets a quote, where an escape is, or
# where a character is not ASCII (the other blanks are); only there is it trimmed. A space
# before a quote is a value's end only where what may follow a value follows (a comma, a
# bracket, or a blank, as in `"value " , "key"`): `, "key": "value"` (Python's `json.dumps`
# writes so) has a space before every key and value, and made every line of such a file
# suspect (a trim of every field of every row: 10 s of 300,000 rows). A value that starts
# with a blank is told by its own first character (`strict.texts`, `starts=True`): a search
# for a quote then a space in the line cost 1 CPU s of 1M lines (a quote is every few bytes
# of JSON).
SUSPECT = r"""(contains(j, ' ",') OR contains(j, ' "}')
               OR contains(j, ' "]') OR contains(j, ' " ') OR contains(j, ' "' || chr(9))
               OR contains(j, ' "' || chr(13)) OR contains(j, '\')
               OR strlen(j) <> length(j))"""


def lines_sql(gzipped: bool, buffer_bytes: int | None = None) -> str:
    """The file (`$1`) as rows `j` (a line's text) and `_blank`, one per line, in order:
    DuckDB's CSV reader as a line reader, on both cores. `buffer_bytes`: the text it reads
    at a time, if not DuckDB's default (its chunks of rows hold no more)."""
    compression = "gzip" if gzipped else "none"
    buffer = f", buffer_size = {buffer_bytes}" if buffer_bytes else ""
    return f"""
            SELECT j, {BLANK} AS _blank
            FROM read_csv($1, columns = {{'j': 'VARCHAR'}}, header = false, delim = '\\x01',
                          quote = '', escape = '', auto_detect = false,
                          max_line_size = {MAX_LINE_BYTES},
                          compression = '{compression}'{buffer})"""


def keys_sql(tolerant: bool) -> str:
    # Not `try(json_keys(j))`: where a call fails in a vector of 2,048 lines, `try` reads the
    # whole vector again line by line, and with one bad line in 500 that was every vector
    # (2.7 CPU s against 1.9 on 200,000 lines). `json_valid` is one more parse, in C++.
    return "CASE WHEN json_valid(j) THEN json_keys(j) END" if tolerant else "json_keys(j)"


@lru_cache(maxsize=8)
def _sql(usual: tuple[str, ...], tolerant: bool, gzipped: bool) -> str:
    aliases = key_aliases()
    spec = json.dumps(dict.fromkeys(usual, "VARCHAR"))
    usual_list = fast.key_list(usual)
    values = {aliases[key]: f"_f.{fast.quoted(key)}" for key in usual}
    selected, sure = strict.columns(values, "_suspect")
    texts = strict.texts(values, "_suspect", starts=True)
    return f"""
SELECT _blank, _ok, {", ".join(f'"{name}"' for name in FIELD_NAMES)},
    CASE WHEN NOT _ok AND NOT _blank THEN j END AS j
FROM (
  SELECT _blank, j, coalesce(_usual AND {sure}, false) AS _ok, {", ".join(selected)}
  FROM (
    SELECT _blank, j, _usual, {", ".join(texts)}
    FROM (
      SELECT _blank, j, _usual, _f, {SUSPECT} AS _suspect
      FROM (
        SELECT _blank, j, coalesce(_keys = {usual_list}, false) AS _usual,
          CASE WHEN _keys = {usual_list} THEN json_transform(j, {fast.literal(spec)}) END AS _f
        FROM (
          SELECT j, _blank, CASE WHEN NOT _blank THEN {keys_sql(tolerant)} END AS _keys
          FROM ({lines_sql(gzipped)})
        )
      )
    )
  )
)
"""
