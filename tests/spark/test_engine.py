"""The Spark engine without starting Spark: what `sql --engine spark` lets through, the S3
settings it passes on, and the one line (exit 5) where Spark or Java is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.query import QueryError
from pipeline.spark import run, session, source
from pipeline.store import location
from tests.conftest import ndjson, run_cli
from tests.conftest import session as a_session

READING = [
    "SELECT 1",
    "select * from sessions;",
    "WITH a AS (SELECT 1) SELECT * FROM a",
    "VALUES (1)",
    "DESCRIBE sessions",
    "SHOW VIEWS",
    "EXPLAIN FORMATTED SELECT * FROM sessions",
]
REFUSED = {
    "DROP VIEW sessions": "not a statement of type DROP",
    "INSERT INTO x SELECT 1": "of type INSERT",
    "CREATE TABLE x AS SELECT 1": "of type CREATE",
    "SET spark.sql.runSQLOnFiles=true": "of type SET",
    "EXPLAIN DROP VIEW sessions": "of type DROP",
    "CACHE TABLE sessions": "of type CACHE",
    "ADD JAR /tmp/x.jar": "of type COMMAND",
    "SELECT 1; SELECT 2": "holds 2 statements",
    " ; ": "is empty",
    "SELECT reflect('java.lang.System', 'exit', 1)": "call Java",
    "SELECT upper(java_method('java.lang.System', 'getenv', 'HOME'))": "call Java",
}


@pytest.mark.parametrize("text", READING)
def test_reading_queries_run(text: str) -> None:
    assert run.one_query(text) == text.rstrip(";")


@pytest.mark.parametrize(("text", "said"), REFUSED.items())
def test_everything_else_is_refused(text: str, said: str) -> None:
    with pytest.raises(QueryError, match=said):
        run.one_query(text)


def test_s3_settings_are_passed_on_as_s3a(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    settings = session.s3_settings(location.of("s3://bucket/prefix"))
    assert settings == {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.access.key": "key",
        "spark.hadoop.fs.s3a.secret.key": "secret",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    with_token = session.s3_settings(location.of("s3://bucket/prefix"))
    assert with_token["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "TemporaryAWSCredentialsProvider"
    )
    assert session.s3_settings(location.of("/some/folder")) == {}
    assert source.spark_uri("s3://bucket/a/b.parquet") == "s3a://bucket/a/b.parquet"
    assert source.spark_uri("/a/b.parquet") == "/a/b.parquet"


def test_spark_types_of_the_warehouse_schemas() -> None:
    from pipeline.store import tables

    assert (
        source.ddl(tables.rejects_schema())
        .split(", `reason`")[0]
        .endswith("`reasons` ARRAY<STRUCT<`field`: STRING, `rule`: STRING, `value`: STRING>>")
    )
    assert "`timestamp` TIMESTAMP" in source.ddl(source._stored_columns())
    assert "`local_date` DATE" in source.ddl(source._stored_columns())


@pytest.fixture
def small_warehouse(tmp_path: Path) -> Path:
    export = tmp_path / "one.ndjson"
    export.write_bytes(ndjson([a_session(1)]))
    warehouse = tmp_path / "warehouse"
    result = run_cli("ingest", export, "--warehouse", warehouse, "--quiet")
    assert result.returncode == 0, result.stderr
    return warehouse


def _cli_without(
    code: str, *args: str | Path, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """The CLI in a Python where `code` ran first (to take something away)."""
    program = f"import sys; {code}; from pipeline.cli import main; sys.argv[0] = 'sessions'; main()"
    result = subprocess.run(
        [sys.executable, "-c", program, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert result.stdout == ""
    return result.returncode, result.stderr


def test_without_pyspark_one_line_says_how_to_install(small_warehouse: Path) -> None:
    for command in (["stats"], ["sql", "SELECT 1"]):
        code, err = _cli_without(
            "sys.modules['pyspark'] = None",  # what an environment without it imports
            *command,
            "--engine",
            "spark",
            "--warehouse",
            small_warehouse,
        )
        assert code == 5
        assert err == (
            "error: --engine spark: Spark is not installed; run `make spark` "
            "(or `pip install -r requirements-spark.lock`)\n"
        )


def test_without_java_one_line_says_how_to_install(small_warehouse: Path) -> None:
    pytest.importorskip("pyspark", reason="the Spark extra is not installed (make spark)")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # this Python, and no java
    code, err = _cli_without(
        "pass", "stats", "--engine", "spark", "--warehouse", small_warehouse, env=env
    )
    assert code == 5
    assert err.startswith("error: --engine spark: Spark needs Java 17 and none was found")
    assert err.count("\n") == 1
