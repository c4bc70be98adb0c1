"""polars + Pandera: explicit schema, validate, unique on session_id (keep last), a Parquet
file per day (`write_parquet(partition_by=...)`).

With a third argument `lenient` (the probe's second run): the readers' `ignore_errors` and
Pandera's `drop_invalid_rows`, the documented ways to go past a bad row instead of aborting.
"""

from __future__ import annotations

import sys

import polars as pl

from schemas import SESSION_FIELDS, pandera_schema, polars_schema

source, out = sys.argv[1], sys.argv[2]
lenient = sys.argv[3:] == ["lenient"]
# The timestamp is text in both formats; it is parsed with its one layout below.
schema = polars_schema() | {"timestamp": pl.String()}
if source.endswith(".csv"):
    frame = pl.read_csv(source, schema=schema, ignore_errors=lenient)
else:
    frame = pl.read_ndjson(source, schema=schema, ignore_errors=lenient)
timestamp = pl.col("timestamp").str.to_datetime(
    "%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="us", time_zone="UTC", strict=not lenient
)
frame = frame.with_columns(timestamp).select(f.name for f in SESSION_FIELDS)
validator = pandera_schema()
if lenient:
    validator.drop_invalid_rows = True
frame = validator.validate(frame, lazy=True)
frame = frame.unique("session_id", keep="last", maintain_order=True)
frame.with_columns(date=pl.col("timestamp").dt.date()).write_parquet(
    out, partition_by="date", mkdir=True
)
