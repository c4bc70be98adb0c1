"""Starting Spark: a local master, a cluster, or a Spark Connect server; or one line on how
to install what is missing (exit 5)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError
from pipeline.store.location import Warehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
INSTALL = "run `make spark` (or `pip install -r requirements-spark.lock`)"

# The settings every session gets. Times are UTC, as DuckDB's are (`SET TimeZone = 'UTC'`):
# the views' timestamps are instants, and their text is given in UTC. No web UI, no progress
# bars on the terminal. A query may not read files by path (`parquet.`/path``): it reads the
# warehouse's views and nothing else, as with DuckDB.
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.runSQLOnFiles": "false",
}
# A local master: a handful of partitions per shuffle, not Spark's 200, for one machine; and
# the version's files listed by the driver itself, not by a Spark job once they are over 32
# (a job costs seconds; a cluster on object storage keeps the job).
LOCAL_SETTINGS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}


class EngineUnavailable(PipelineError):
    """The engine asked for cannot run here: not installed, no Java, or it did not start."""

    exit_code = 5


def _pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise EngineUnavailable(f"--engine spark: Spark is not installed; {INSTALL}") from None


def _java() -> None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return
    if shutil.which("java") is None:
        raise EngineUnavailable(
            "--engine spark: Spark needs Java 17 and none was found: install it "
            "(`apt-get install -y openjdk-17-jre-headless`, or `make spark`) or set JAVA_HOME"
        )


def s3_settings(wh: Warehouse) -> dict[str, str]:
    """An S3 warehouse's settings for Hadoop's S3A file system, from the same AWS_* variables
    the DuckDB engine reads. (S3A itself is the hadoop-aws jar, which a cluster has and the
    pyspark wheel does not.)"""
    if wh.local is not None:
        return {}
    env = os.environ
    found = {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.access.key": env.get("AWS_ACCESS_KEY_ID", ""),
        "spark.hadoop.fs.s3a.secret.key": env.get("AWS_SECRET_ACCESS_KEY", ""),
        "spark.hadoop.fs.s3a.session.token": env.get("AWS_SESSION_TOKEN", ""),
        "spark.hadoop.fs.s3a.endpoint.region": env.get(
            "AWS_REGION", env.get("AWS_DEFAULT_REGION", "")
        ),
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        found["spark.hadoop.fs.s3a.endpoint"] = endpoint
        # A private endpoint (MinIO, moto) has no bucket subdomains.
        found["spark.hadoop.fs.s3a.path.style.access"] = "true"
        found["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            endpoint.startswith("https:")
        ).lower()
    if found["spark.hadoop.fs.s3a.session.token"]:
        found["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
            "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
        )
    return {key: value for key, value in found.items() if value}


@contextmanager
def _jvm_output_aside() -> Iterator[str]:
    """Spark's JVM writes its log and warnings to the standard error it inherits: it inherits
    a file instead (for its whole life), so that the command's stderr keeps its one line."""
    descriptor, name = tempfile.mkstemp(prefix="sessions-spark-", suffix=".log")
    saved = os.dup(2)
    os.dup2(descriptor, 2)
    try:
        yield name
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(descriptor)


def start(wh: Warehouse, master: str | None = None) -> SparkSession:
    """A Spark session for reading `wh`: on SPARK_REMOTE (Spark Connect) where that is set,
    else on `master` (`--spark-master`, SPARK_MASTER, else local[*])."""
    _pyspark()
    from pyspark.sql import SparkSession

    # pyspark logs every failed query's error to stderr itself; the CLI says it in one line.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).disabled = True
    settings = {**SETTINGS, **s3_settings(wh)}
    remote = os.environ.get("SPARK_REMOTE")
    builder = SparkSession.builder
    if remote:
        try:
            builder = builder.remote(remote)
        except ImportError as exc:  # Spark Connect's client needs grpcio, pandas, ...
            raise EngineUnavailable(
                f"SPARK_REMOTE={remote}: Spark Connect's client is not installed "
                f"(pip install 'pyspark[connect]==4.3.0'): {exc}"
            ) from None
    else:
        _java()
        master = master or os.environ.get("SPARK_MASTER") or DEFAULT_MASTER
        builder = builder.master(master).appName("sessions")
        if master.startswith("local"):
            settings.update(LOCAL_SETTINGS)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _jvm_output_aside() as log:
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # pyspark raises its own, py4j's or OS errors alike
            raise EngineUnavailable(
                f"--engine spark: Spark did not start ({_first_line(exc)}); its log: {log}"
            ) from None
    # The JVM keeps writing to the file; unlinked, it goes when the JVM does.
    os.unlink(log)
    if not remote:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
