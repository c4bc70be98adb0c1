"""CSV, fast: DuckDB reads the file and types what is certain; the rest goes the exact way.

DuckDB's CSV reader (RFC 4180, strict, every field text) reads the records on both cores;
the values in the layout the API writes are typed in the same query (`strict`). A record
with any other value (a blank at an end, another layout, a value that does not parse), or
with fewer fields than the header (DuckDB pads it), is odd: only its place is kept, and at
the end, in one more pass over the file, the odd records alone are read by the exact
reader's own code (`csv._parse`), for the transform to type and reject as it always has.

The reader gives up (`fast.Fallback`) where DuckDB does not see the file's records as the
exact reader does: a record it cannot read (a quote out of place, a field too many, bytes
that are not UTF-8), a record over several lines (a quoted newline), a blank line, or more
odd records than it keeps aside. The exact reader then reads the file from the start.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import lru_cache

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.read import csv as exact_csv
from pipeline.read import fast, strict
from pipeline.read.json_records import META_COLUMNS
from pipeline.read.records import Records, iter_records
from pipeline.read.source import Format, Source, open_bytes
from schemas import FIELD_NAMES, key_aliases, repeated_fields

# Odd records kept aside until the end, at most: a file with more is read the exact way.
MAX_ODD = 100_000
MAX_LINE_BYTES = 1 << 20
# DuckDB's null text, a control character no export writes: so that an empty field is read
# as '' and a field a short record lacks (padded) as NULL.
_PADDED = "\x02"
# Read the exact way, a file that has anywhere:
# - a space beside a quote: DuckDB's CSV parser drops one before an opening quote and those
#   after a closing one, where the exact reader's (Arrow's) keeps them as text (`, "2"`,
#   `"a" "b"`, or `""hi"" there` inside a field);
# - the null text itself: DuckDB reads a field that is just that character, quoted or not, as
#   null, where the exact reader keeps it (a session's id, and so its key, would change).
REFUSED = (b' "', b'" ', _PADDED.encode())
# What the exact reader's parser (Arrow's CSV reader, default options) reads as null.
_NULL_SPELLINGS = tuple(pacsv.ConvertOptions().null_values)


def header(source: Source) -> list[str] | None:
    """The names of `source`'s columns, if the fast reader may read it: a UTF-8 CSV whose
    header is one line and names each field once. (A byte order mark DuckDB drops, as the
    exact reader does; `open_bytes` drops it here.)"""
    if source.format is not Format.CSV or source.encoding != "utf-8":
        return None
    with open_bytes(source) as stream:
        head = stream.read(fast.HEAD_BYTES)
    if b"\n" not in head:
        return None
    line = head.split(b"\n", 1)[0]
    try:
        rows = list(csv.reader(io.StringIO(line.decode(), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(rows) != 1:
        return None
    names = [name.strip() for name in rows[0]]
    if repeated_fields(names) or not any(name in key_aliases() for name in names):
        return None
    if len(names) == 1:
        # With one column DuckDB reads a blank line as a record (of one null); the exact
        # reader skips it, and the count of lines cannot tell them apart.
        return None
    return names


def read(
    source: Source,
    con: duckdb.DuckDBPyConnection,
    warn: Callable[[str], None],
    names: list[str],
    counter: fast.LineCounter | None = None,
) -> Iterator[tuple[str, pl.DataFrame]]:
    """The sessions of `source` (whose header is `names`) in batches, as `fast_ndjson.read`
    gives them. `con` must preserve insertion order. `counter`: the file's line count,
    started (with `REFUSED`), if the caller has one."""
    if counter is None:
        counter = fast.LineCounter(source, refused=REFUSED)
        counter.start()
    odd: list[np.ndarray] = []
    odd_rows = elements = 0
    try:
        with fast.read_failures(tolerant=True):
            sql = _sql(tuple(names), source.gzipped)
            result = con.sql(sql, params=[str(source.path)]).to_arrow_reader(fast.BATCH_ROWS)
            assert result is not None
            for table in fast.batches(result):
                typed, places = _split(table, names, elements)
                elements += table.num_rows
                if typed is not None:
                    yield "typed", typed
                if len(places):
                    odd.append(places)
                    odd_rows += len(places)
                    if odd_rows > MAX_ODD:
                        raise fast.Fallback(f"more than {MAX_ODD:,} records are odd")
        counted = counter.result()
    finally:
        counter.join()
    if counted != elements + 1:
        raise fast.Fallback(f"DuckDB read {elements} records, the count says {counted} lines")
    if odd:
        yield from _odd_records(source, con, names, np.concatenate(odd))


def _split(
    table: pa.Table, names: list[str], elements: int
) -> tuple[pl.DataFrame | None, np.ndarray]:
    """The batch's typed rows, and the places (elements) of its odd records."""
    ok = table.column("_ok").to_numpy(zero_copy_only=False)
    element = np.arange(elements, elements + table.num_rows, dtype=np.int64)
    # The record's first line: the header is line 1, and each record is one line (or the
    # count of lines would not agree, and the file would be read the exact way).
    line = element + 2
    typed = None
    if ok.any():
        columns = [c for i, c in enumerate(_raw_names(len(names))) if names[i] not in key_aliases()]
        frame = fast.rows_where(table.select([*FIELD_NAMES, *columns]), ok)
        extra, keys = _extra_fields(frame, names)
        unknown = frame.with_columns(extra.alias("extra_fields"), keys.alias("_keys")).select(
            "extra_fields", "_keys"
        )
        typed = (
            fast.with_meta(frame.select(FIELD_NAMES), line[ok], element[ok])
            .drop("extra_fields", "_keys")
            .hstack(unknown)
            .select(*FIELD_NAMES, *META_COLUMNS, "_reasons")
        )
    return typed, element[~ok]


def _extra_fields(frame: pl.DataFrame, names: list[str]) -> tuple[pl.Expr, pl.Expr]:
    """The unknown columns as the exact reader writes them (one JSON object of their texts),
    and the header as every record's keys where it has unknown columns (else none)."""
    aliases = key_aliases()
    unknown = [(f"_c{i}", name) for i, name in enumerate(names) if name not in aliases]
    if not unknown:
        return pl.lit(None, pl.String), pl.lit(None, pl.List(pl.String))
    extra = pl.struct([pl.col(column).alias(name) for column, name in unknown]).struct
    keys = pl.lit(pl.Series([names], dtype=pl.List(pl.String))).first()
    return extra.json_encode(), keys


def _odd_records(
    source: Source, con: duckdb.DuckDBPyConnection, names: list[str], elements: np.ndarray
) -> Iterator[tuple[str, pl.DataFrame]]:
    """The odd records (by their places) as the exact reader gives them: read from the file
    again, in one pass, and parsed by the exact reader's own code, these records alone."""
    # Each record is one line (or the count of lines would not have agreed): the header is
    # line 1, element e is line e + 2.
    wanted = elements + 2
    cursor = con.cursor()
    pending: list[pl.DataFrame] = []
    rows = 0
    try:
        with open_bytes(source) as stream:
            for records in iter_records(stream, quoted=True, chunk_bytes=exact_csv.CHUNK_BYTES):
                hit = np.flatnonzero(np.isin(records.line, wanted))
                if not len(hit):
                    continue
                picked = _picked(records, hit)
                if not np.array_equal(picked.line - 2, elements[rows : rows + len(hit)]):
                    raise fast.Fallback("the odd records are not where DuckDB read them")
                frame = exact_csv._parse(cursor, picked, names, 0).with_columns(
                    pl.Series("_element", picked.line - 2, dtype=pl.Int64)
                )
                pending.append(frame)
                rows += len(hit)
                if sum(len(f) for f in pending) >= fast.BATCH_ROWS:
                    yield "raw", pl.concat(pending)
                    pending = []
    finally:
        cursor.close()
    if rows != len(elements):
        raise fast.Fallback("the odd records are not where DuckDB read them")
    if pending:
        yield "raw", pl.concat(pending)


def _picked(records: Records, rows: np.ndarray) -> Records:
    """The records at `rows` of a chunk, with their errors (if any)."""
    at = {int(r): i for i, r in enumerate(rows)}
    errors = tuple((at[i], rule, detail) for i, rule, detail in records.errors if i in at)
    return Records(records.data.take(pa.array(rows)), records.line[rows], b"", errors)


def _raw_names(width: int) -> list[str]:
    return [f"_c{i}" for i in range(width)]


@lru_cache(maxsize=8)
def _sql(names: tuple[str, ...], gzipped: bool) -> str:
    aliases = key_aliases()
    raw = _raw_names(len(names))
    # As the exact reader's CSV parser (Arrow's) gives them: a field that is one of its null
    # spellings (empty, `NULL`, `NA`, `n/a`, `NaN`, ...), quoted or not, is null.
    nulls = ", ".join(fast.literal(v) for v in _NULL_SPELLINGS)
    # A field longer than every spelling is not one: its length (kept beside the text) is
    # looked at before the 17 comparisons (0.15 CPU s of 0.55 on 1M records).
    longest = max(len(v.encode()) for v in _NULL_SPELLINGS)
    raw_texts = [
        f"CASE WHEN strlen({column}) <= {longest} AND {column} IN ({nulls}) THEN NULL "
        f"ELSE {column} END AS {column}"
        for column in raw
    ]
    values = {
        aliases[name]: column for name, column in zip(names, raw, strict=True) if name in aliases
    }
    selected, sure = strict.columns(values, "_suspect")
    texts = strict.texts(values, "_suspect")
    # A value may start or end with a blank only where a field does, or where a character is
    # not ASCII, or a control character is; the fields are joined to look once a record.
    joined = "concat_ws(chr(31), " + ", ".join(values.values()) + ")"
    # A control character is looked for one by one: a byte search each, where the regular
    # expression `[\x09-\x0d]` cost 0.75 CPU s on 1M records (a quarter of the query).
    controls = " OR ".join(f"contains(_all, chr({code}))" for code in range(0x09, 0x0E))
    suspect = f"""(starts_with(_all, ' ') OR ends_with(_all, ' ')
        OR contains(_all, chr(31) || ' ') OR contains(_all, ' ' || chr(31))
        OR strlen(_all) <> length(_all) OR {controls})"""
    columns = "{" + ", ".join(f"'{column}': 'VARCHAR'" for column in raw) + "}"
    compression = "gzip" if gzipped else "none"
    # The unknown fields' texts go out with every record (for `extra_fields`); the known
    # ones' only typed: an odd record is read again from the file, the exact way.
    out = [c for i, c in enumerate(raw) if names[i] not in aliases]
    # A record with fewer fields than the header is padded with nulls by DuckDB, and only
    # such a record has a null field (see `_PADDED`): its last field is null.
    return f"""
SELECT _ok, {", ".join(f'"{name}"' for name in FIELD_NAMES)}{"".join(", " + c for c in out)}
FROM (
  SELECT coalesce({sure}, false) AND NOT _short AS _ok, {", ".join(selected)}, {", ".join(raw)}
  FROM (
    SELECT _short, {", ".join(raw)}, {", ".join(texts)}
    FROM (
      SELECT *, {suspect} AS _suspect
      FROM (
        SELECT {raw[-1]} IS NULL AS _short, {", ".join(raw_texts)}, {joined} AS _all
        FROM read_csv($1, columns = {columns}, header = true, delim = ',', quote = '"',
                      escape = '"', auto_detect = false, strict_mode = true,
                      null_padding = true, nullstr = {fast.literal(_PADDED)},
                      max_line_size = {MAX_LINE_BYTES}, compression = '{compression}')
      )
    )
  )
)
"""
