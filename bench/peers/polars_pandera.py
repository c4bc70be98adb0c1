"""polars + Pandera: explicit schema, validate, unique on session_id (keep last), a Parquet
file per day (`write_parquet(partition_by=...)`)."""

from __future__ import annotations

import sys

import polars as pl

from schemas import SESSION_FIELDS, pandera_schema, polars_schema

source, out = sys.argv[1], sys.argv[2]
# The timestamp is text in both formats; it is parsed with its one layout below.
schema = polars_schema() | {"timestamp": pl.String()}
if source.endswith(".csv"):
    frame = pl.read_csv(source, schema=schema)
else:
    frame = pl.read_ndjson(source, schema=schema)
frame = frame.with_columns(
    pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="us", time_zone="UTC")
).select(f.name for f in SESSION_FIELDS)
frame = pandera_schema().validate(frame, lazy=True)
frame = frame.unique("session_id", keep="last", maintain_order=True)
frame.with_columns(date=pl.col("timestamp").dt.date()).write_parquet(
    out, partition_by="date", mkdir=True
)
