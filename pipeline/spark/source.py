"""A warehouse version's two tables as Spark's `stored_sessions` and `stored_rejects`, the
relations the transpiled views read (`pipeline.views.dialects`).

With the Delta Spark package on the classpath (a cluster with Delta Lake), Spark reads the
Delta tables at the version itself. Without it (pyspark from PyPI, offline), it reads the
Parquet files the version lists, the list the DuckDB engine reads (`Version.session_files`),
with the schema the warehouse writes. Either way the rejects are those of the runs the
version's manifest lists, as the DuckDB engine's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from pipeline.store import tables
from pipeline.store.tables import StoredFile, Version
from pipeline.views.dialects import STORED_REJECTS, STORED_SESSIONS
from schemas import STORED_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"


def spark_type(kind: pa.DataType) -> str:
    """The Spark SQL type of an Arrow type of the warehouse's schemas."""
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"  # an instant (Spark's TIMESTAMP is LTZ), as the files store it
    if pa.types.is_list(kind):
        return f"ARRAY<{spark_type(kind.value_type)}>"
    if pa.types.is_struct(kind):
        fields = ", ".join(f"`{f.name}`: {spark_type(f.type)}" for f in kind)
        return f"STRUCT<{fields}>"
    simple = {
        pa.string(): "STRING",
        pa.large_string(): "STRING",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    return simple[kind]


def ddl(schema: pa.Schema) -> str:
    """A Spark schema (DDL) of the same columns."""
    return ", ".join(f"`{field.name}` {spark_type(field.type)}" for field in schema)


def _stored_columns() -> pa.Schema:
    return pa.schema([pa.field(f.name, f.arrow_type) for f in STORED_FIELDS])


def has_delta(spark: SparkSession) -> bool:
    """Whether Spark reads Delta tables itself (the Delta Spark package is configured)."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return _DELTA_EXTENSION in extensions


def spark_uri(location: str) -> str:
    """A file's place as Hadoop reads it: `s3a://` for `s3://` (S3A is Hadoop's S3 client)."""
    return "s3a://" + location[len("s3://") :] if location.startswith("s3://") else location


def _files(spark: SparkSession, files: list[StoredFile], schema: pa.Schema) -> DataFrame:
    if not files:
        return spark.createDataFrame([], ddl(schema))
    paths = [spark_uri(f.location) for f in files]
    return spark.read.schema(ddl(schema)).parquet(*paths)


def register(spark: SparkSession, version: Version) -> None:
    """`stored_sessions` and `stored_rejects` of `version`, as temporary views of `spark`."""
    sessions_schema, rejects_schema = _stored_columns(), tables.rejects_schema()
    if has_delta(spark):
        sessions = (
            spark.read.format("delta")
            .option("versionAsOf", version.number)
            .load(spark_uri(version.wh.table(tables.SESSIONS)))
        )
        rejects = (
            spark.read.format("delta").load(spark_uri(version.wh.table(tables.REJECTS)))
            if version.rejects is not None
            else spark.createDataFrame([], ddl(rejects_schema))
        )
    else:
        sessions = _files(spark, version.session_files(), sessions_schema)
        rejects = _files(spark, version.reject_files(), rejects_schema)
    sessions = sessions.select(*[f"`{name}`" for name in sessions_schema.names])
    from pyspark.sql import functions

    runs = version.runs
    rejects = rejects.select(*[f"`{name}`" for name in rejects_schema.names]).where(
        functions.col("run_id").isin(runs) if runs else functions.lit(False)
    )
    sessions.createOrReplaceTempView(STORED_SESSIONS)
    rejects.createOrReplaceTempView(STORED_REJECTS)
