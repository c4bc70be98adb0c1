"""CSV exports: a header row naming session fields, then one session per record."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.errors import InputError
from pipeline.read.json_records import META_COLUMNS
from pipeline.read.records import MAX_RECORD_BYTES, UNBALANCED_QUOTE, Records, iter_records
from pipeline.read.source import Source, open_bytes
from schemas import FIELD_NAMES, key_aliases, repeated_fields

# A CSV record is about a third of an NDJSON line: half the bytes of a JSON read still make
# the larger batch (about 30,000 sessions), and twice them cost 200 MiB more at the peak.
CHUNK_BYTES = 8 << 20

_DECODE_SQL = "SELECT try(decode(_bytes)) AS _text, CAST(_bytes AS VARCHAR) AS _raw FROM batch"


def read(
    source: Source, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]
) -> Iterator[pl.DataFrame]:
    if warning := source.encoding_warning():
        warn(warning)
    with open_bytes(source) as stream:
        chunks = iter_records(stream, quoted=True, chunk_bytes=CHUNK_BYTES)
        header: list[str] | None = None
        element = 0
        for records in chunks:
            if header is None:
                header = _header(source, records)
                records = records[1:]
            if len(records.data) == 0:
                continue
            yield _parse(con, records, header, element)
            element += len(records.data)


def _header(source: Source, records: Records) -> list[str]:
    line: bytes = records.data[0].as_py()
    try:
        if records.errors and records.errors[0][0] == 0:
            raise csv.Error(records.errors[0][2])
        names = [name.strip() for name in next(csv.reader(io.StringIO(line.decode())))]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(source.path, f"the CSV header cannot be read: {exc}") from None
    repeated = sorted(repeated_fields(names))
    if repeated:
        raise InputError(
            source.path,
            # Quoted, so that an empty name (`a,,,b`) shows as one.
            f"the CSV header names {', '.join(repr(name) for name in repeated)} more than once",
            "each field may have one column, in snake_case or camelCase",
        )
    return names


def _parse(
    con: duckdb.DuckDBPyConnection, records: Records, header: list[str], first: int
) -> pl.DataFrame:
    """Parse one chunk of records; a record that is not UTF-8, that could not be cut out
    cleanly, or that has the wrong number of fields becomes a row with `_error` set instead
    of being dropped."""
    n = len(records.data)
    cut_rule, cut_detail = records.error_columns()
    con.register("batch", pa.table({"_bytes": records.data}))
    try:
        texts = pl.from_arrow(con.sql(_DECODE_SQL).to_arrow_table())
    finally:
        con.unregister("batch")
    assert isinstance(texts, pl.DataFrame)
    utf8 = texts["_text"].is_not_null()
    readable = utf8 & pl.Series(cut_rule.is_null())
    parsed, bad_fields = _parse_fields(records.data.filter(readable.to_arrow()), len(header))
    parsed_rows = np.flatnonzero(readable.to_numpy())
    bad_rows = parsed_rows[[i for i, _, _ in bad_fields]]
    parsed_rows = np.delete(parsed_rows, [i for i, _, _ in bad_fields])

    aliases = key_aliases()
    values = pl.from_arrow(parsed)
    assert isinstance(values, pl.DataFrame)
    values = values.rename(dict(zip(values.columns, header, strict=True)))
    unknown = [name for name in header if name not in aliases]
    extra = pl.struct(unknown).struct.json_encode() if unknown else pl.lit(None, pl.String)
    fields = values.select(
        pl.Series("_row", parsed_rows, dtype=pl.Int64),
        *[pl.col(name).alias(aliases[name]) for name in header if name in aliases],
        extra.alias("extra_fields"),
    )
    bad = pl.DataFrame(
        {
            "_row": bad_rows.astype(np.int64),
            "_bad_rule": [rule for _, rule, _ in bad_fields],
            "_bad_detail": [detail for _, _, detail in bad_fields],
        },
        schema={"_row": pl.Int64, "_bad_rule": pl.String, "_bad_detail": pl.String},
    )
    missing = [name for name in FIELD_NAMES if name not in fields.columns]
    return (
        pl.DataFrame({"_row": np.arange(n, dtype=np.int64)})
        .join(fields, on="_row", how="left", maintain_order="left")
        .join(bad, on="_row", how="left", maintain_order="left")
        .with_columns(
            *[pl.lit(None, pl.String).alias(name) for name in missing],
            # Every record has the header's keys; where all are known (the header has no
            # field twice: see `_header`), they are the usual keys, which need no check.
            pl.lit(pl.Series([header if unknown else None], dtype=pl.List(pl.String)))
            .first()
            .alias("_keys"),
            pl.Series("_line", records.line, dtype=pl.Int64),
            (pl.col("_row") + first).alias("_element"),
            pl.lit(None, pl.Int64).alias("_item"),
            texts.select(pl.coalesce("_text", "_raw").str.strip_chars_end("\r\n"))
            .to_series()
            .alias("_record"),
            pl.coalesce(
                pl.Series(cut_rule, dtype=pl.String),
                pl.when(~utf8).then(pl.lit("invalid_utf8")),
                "_bad_rule",
            ).alias("_error"),
            pl.coalesce(pl.Series(cut_detail, dtype=pl.String), "_bad_detail").alias(
                "_error_detail"
            ),
        )
        .select(*FIELD_NAMES, *META_COLUMNS)
    )


def _parse_fields(
    data: pa.LargeBinaryArray, width: int
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Fields of each record as text; the records that are not one row of `width` fields,
    apart, with the rule they break and how."""
    names = [f"c{i}" for i in range(width)]
    if len(data) == 0:
        return pa.table({name: pa.array([], pa.string()) for name in names}), []
    try:
        table, bad = _parse_together(data, names)
        if table.num_rows + len(bad) == len(data):
            return table, bad
    except pa.ArrowInvalid:
        pass
    # The parser did not see one row in each record (a quote it reads otherwise than the
    # splitter did): each record is parsed alone, so that it alone is rejected.
    return _parse_one_by_one(data, names)


def _parse_together(
    data: pa.LargeBinaryArray, names: list[str]
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    body = data.buffers()[2]
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[: len(data) + 1]
    content = body[offsets[0] : offsets[-1]].to_pybytes()
    if not content.endswith(b"\n"):
        content += b"\n"
    bad: list[tuple[int, str, str]] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        # Row numbers count records from 1 when no header row is read.
        found = f"{row.actual_columns} fields, the header has {row.expected_columns}"
        bad.append((row.number - 1, "csv_field_count", found))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(content),
        # One block: a record may be larger than the default block (1 MB), never than this.
        read_options=pacsv.ReadOptions(
            column_names=names, use_threads=False, block_size=len(content) + 1
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    return table, bad


def _parse_one_by_one(
    data: pa.LargeBinaryArray, names: list[str]
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    rows: list[list[str | None]] = []
    bad: list[tuple[int, str, str]] = []
    # A field may be as large as a record (the default limit is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    for i, record in enumerate(data.to_pylist()):
        try:
            parsed = list(csv.reader(io.StringIO(record.decode(), newline="")))
        except csv.Error as exc:
            bad.append((i, UNBALANCED_QUOTE, str(exc)))
            continue
        if len(parsed) != 1:
            bad.append((i, UNBALANCED_QUOTE, f"a quote makes it {len(parsed)} rows"))
        elif len(parsed[0]) != len(names):
            found = f"{len(parsed[0])} fields, the header has {len(names)}"
            bad.append((i, "csv_field_count", found))
        else:
            rows.append([value or None for value in parsed[0]])
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pa.table(
        {name: pa.array(column, pa.string()) for name, column in zip(names, columns, strict=True)}
    ), bad
