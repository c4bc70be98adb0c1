"""Spark local[2]: read with an explicit schema, dropDuplicates on session_id (it keeps any
one row of a key, not the latest), a Parquet folder per day. A third argument `lenient`:
PERMISSIVE instead of FAILFAST.

It runs in a Python of its own ($BENCH_SPARK_PYTHON, with pyspark; a Java runtime on PATH):
installed beside the project, pyspark makes every `import pandera` load pyspark.pandas (0.3 s
added to each `sessions` command measured). So it does not import the project: the schema
comes as Spark DDL in $SESSIONS_SPARK_SCHEMA, which bench/peer_cases.py derives from
schemas.SESSION_FIELDS.
"""

from __future__ import annotations

import os
import sys

from pyspark import SparkContext
from pyspark.sql import SparkSession, functions

source, out = sys.argv[1], sys.argv[2]
lenient = sys.argv[3:] == ["lenient"]
schema = os.environ["SESSIONS_SPARK_SCHEMA"]
spark = (
    SparkSession.builder.master("local[2]")
    .config("spark.driver.memory", "2g")
    .config("spark.sql.session.timeZone", "UTC")
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
# FAILFAST: a malformed line aborts the read, as the other peers' strict readers do;
# `lenient`: Spark's default, PERMISSIVE, which nulls what does not parse.
reader = spark.read.schema(schema).option("mode", "PERMISSIVE" if lenient else "FAILFAST")
if source.endswith(".csv"):
    frame = reader.option("header", "true").csv(source)
else:
    frame = reader.json(source)
(
    frame.dropDuplicates(["session_id"])
    .withColumn("date", functions.to_date("timestamp"))
    .write.partitionBy("date")
    .parquet(out)
)
spark.stop()
# The JVM is this process's child: shut it down and reap it, so that the harness's wait4()
# reports its peak RSS too (a child's peak reaches its parent's only once it is reaped; the
# figure is then the larger of the two, not their sum).
gateway = SparkContext._gateway
if gateway is not None and getattr(gateway, "proc", None) is not None:
    gateway.shutdown()
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=120)
