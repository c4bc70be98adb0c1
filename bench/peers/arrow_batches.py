"""The Arrow batches both dlt peers load: pyarrow's streaming JSON and CSV readers with the
session schema given (the timestamp parsed by pyarrow from its ISO 8601 text)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv
import pyarrow.json

from schemas import SESSION_FIELDS

SCHEMA = pa.schema([pa.field(f.name, f.arrow_type) for f in SESSION_FIELDS])
BLOCK = 16 << 20  # bytes read at a time: batches of about 20k sessions


def batches(source: str) -> Iterator[pa.RecordBatch]:
    if source.endswith(".csv"):
        reader = pyarrow.csv.open_csv(
            source,
            read_options=pyarrow.csv.ReadOptions(block_size=BLOCK),
            convert_options=pyarrow.csv.ConvertOptions(column_types=SCHEMA),
        )
    else:
        reader = pyarrow.json.open_json(
            source,
            read_options=pyarrow.json.ReadOptions(block_size=BLOCK),
            parse_options=pyarrow.json.ParseOptions(
                explicit_schema=SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    yield from reader
