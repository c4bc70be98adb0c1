"""The Spark engine gives DuckDB's answers: every view, and every stats breakdown with its
filters, on generated sessions and on the edge cases (nulls, zeros, test sessions, null keys,
renamed agents, unknown and DST-edge timezones); integers, strings, dates and times equal,
floats within 1e-12 relative. One Spark session (one JVM) for the whole module; its tests run
on one xdist worker (`--dist loadfile`), so that the JVM starts once."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline import query, views
from pipeline.output import write
from pipeline.scope import Scope
from pipeline.store import location
from tests.conftest import SESSIONS, ndjson, session, write_big_export

pyspark = pytest.importorskip("pyspark", reason="the Spark extra is not installed (make spark)")

from pipeline.spark import run  # noqa: E402
from pipeline.spark import session as spark_session  # noqa: E402

REL = 1e-12
# Near zero a relative bound means nothing (a stddev of equal values: 0 or 1e-14).
ABS = 1e-9
SAMPLES = Path(__file__).parents[2] / "data" / "samples"

EDGE_ZONES = [
    # DST edges: the instants either side of a change, and zones of odd offsets.
    ("2026-03-08T06:59:59.999Z", "America/New_York"),
    ("2026-03-08T07:00:00Z", "America/New_York"),
    ("2026-11-01T05:59:59Z", "America/New_York"),
    ("2026-11-01T06:00:00Z", "America/New_York"),
    ("2026-03-29T00:59:59Z", "Europe/London"),
    ("2026-03-29T01:00:00Z", "Europe/London"),
    ("2026-04-04T14:59:59Z", "Australia/Lord_Howe"),
    ("2026-04-04T15:00:00Z", "Australia/Lord_Howe"),
    ("2026-10-04T12:00:00Z", "Asia/Kathmandu"),
    ("2026-10-04T11:30:00Z", "Pacific/Chatham"),
    ("2026-10-04T23:59:59Z", "Pacific/Kiritimati"),
    # Sunday night UTC, Monday in the zone: the week start and weekday move.
    ("2026-10-04T23:30:00Z", "Asia/Tokyo"),
    # Names only DuckDB knows, not a zone at all, blank, null: all UTC on both engines.
    ("2026-10-05T23:30:00Z", "ACT"),
    ("2026-10-05T23:31:00Z", "America/Coyhaique"),
    ("2026-10-05T23:32:00Z", "EST"),
    ("2026-10-05T23:33:00Z", "Mars/Olympus_Mons"),
    ("2026-10-05T23:34:00Z", ""),
    ("2026-10-05T23:35:00Z", None),
]


def _edge_records() -> list[dict[str, Any] | str]:
    records: list[dict[str, Any] | str] = []
    for n, (moment, zone) in enumerate(EDGE_ZONES):
        records.append(session(1000 + n, timestamp=moment, agent_timezone=zone, agent_id="tz"))
    # Nulls: every key and measure that can be null, in several combinations.
    for n, field in enumerate(
        [
            "agent_id",
            "agent_name",
            "channel_manager_service",
            "channel_manager_type",
            "prompt_id",
            "prompt_version_number",
            "duration",
            "user_terminated",
            "is_outbound",
            "is_test",
        ]
    ):
        records.append(session(1100 + n, **{field: None}))
        records.append(session(1120 + n, **{field: None, "agent_id": None}))
    # Zeros: an agent of zero durations only (stddev 0, percentiles 0), zeros among others.
    records += [session(1200 + n, agent_id="zeros", duration=0.0) for n in range(4)]
    records += [session(1210 + n, duration=0.0, prompt_id="p-zero") for n in range(3)]
    # Test sessions: an agent of test sessions only (no row unless --include-tests).
    records += [session(1300 + n, agent_id="tests-only", is_test=True) for n in range(3)]
    records += [session(1310 + n, is_test=True, user_terminated=True) for n in range(5)]
    # A renamed agent whose latest name is null: the latest name that is not.
    for n, (moment, name) in enumerate(
        [("2026-10-01T10:00:00Z", "Old"), ("2026-10-02T10:00:00Z", "New"), ("2026-10-03", None)]
    ):
        records.append(session(1400 + n, timestamp=moment, agent_id="renamed", agent_name=name))
    # One session alone (no stddev), a legacy one, an outbound one; a row that is rejected.
    records.append(session(1500, agent_id="single", duration=12.5, is_legacy=True))
    records.append(session(1501, agent_id="outbound", is_outbound=True, user_terminated=False))
    records.append(session(1502, duration=-1))
    records.append("not json")
    return records


def _ingest(warehouse: Path, *exports: Path) -> None:
    env = {**os.environ, "SESSIONS_PII_KEY_FILE": str(warehouse.parent / "pii.key")}
    result = subprocess.run(
        [str(SESSIONS), "ingest", *map(str, exports), "--warehouse", str(warehouse), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def edge_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("spark-parity")
    exports = base / "exports"
    exports.mkdir()
    write_big_export(exports / "generated.ndjson", 2000, seed=11)
    (exports / "edges.ndjson").write_bytes(ndjson(_edge_records()))
    warehouse = base / "warehouse"
    _ingest(warehouse, exports / "generated.ndjson", exports / "edges.ndjson")
    return warehouse


@pytest.fixture(scope="module")
def spark(edge_warehouse: Path) -> Iterator[Any]:
    found = spark_session.start(location.of(edge_warehouse), "local[2]")
    yield found
    found.stop()


@pytest.fixture(scope="module")
def both(spark: Any, edge_warehouse: Path) -> Iterator[tuple[Any, Any]]:
    """The edge warehouse's views on DuckDB and on Spark."""
    con = query.connect(edge_warehouse)
    yield con, spark
    con.close()


# The warehouse whose views the module's Spark session holds: making them costs seconds, and
# the sample's tests replace them.
_HELD: dict[str, Path] = {}


def _views_of(warehouse: Path) -> None:
    if _HELD.get("warehouse") != warehouse:
        run.connect(warehouse, master="local[2]")
        _HELD["warehouse"] = warehouse


def _same_value(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=REL, abs_tol=ABS)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same_value, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same_value(left[k], right[k]) for k in left)
    return bool(left == right) and type(left) is type(right)


def _assert_same(duck: pa.Table, spark: pa.Table, ordered: bool) -> None:
    assert duck.column_names == spark.column_names
    left, right = duck.to_pylist(), spark.to_pylist()
    assert len(left) == len(right)
    if not ordered:
        # The row's text, floats left out, orders it: floats differ in their last digits.
        def key(row: dict[str, Any]) -> str:
            return repr([(k, v) for k, v in row.items() if not isinstance(v, float)])

        left, right = sorted(left, key=key), sorted(right, key=key)
    for a, b in zip(left, right, strict=True):
        differ = {k: (a[k], b[k]) for k in a if not _same_value(a[k], b[k])}
        assert not differ, f"{differ} in {a}"


@pytest.mark.parametrize(
    "view",
    [
        "sessions",
        "rejects",
        "agent_duration_stats",
        "channel_duration_stats",
        "prompt_version_duration_stats",
        "agent_daily_duration_stats",
        "prompt_version_changes",
    ],
)
def test_every_view_is_the_same_on_both_engines(
    both: tuple[Any, Any], edge_warehouse: Path, view: str
) -> None:
    con, spark = both
    _views_of(edge_warehouse)
    duck = con.sql(f"SELECT * FROM {view}").to_arrow_table()
    theirs = spark.sql(f"SELECT * FROM {view}").toArrow()
    assert duck.num_rows > 0
    _assert_same(duck, theirs, ordered=False)


def test_the_edges_are_in_the_data(both: tuple[Any, Any]) -> None:
    con, _ = both
    rows = con.sql("""
        SELECT local_timezone, count(*) FROM sessions WHERE agent_id = 'tz' GROUP BY 1
    """).fetchall()
    zones = dict(rows)
    # The six names no engine lists all read as UTC; the listed ones as themselves.
    assert zones["UTC"] == 6 and zones["America/New_York"] == 4
    names = con.sql("SELECT agent_name FROM agent_duration_stats WHERE agent_id = 'renamed'")
    assert names.fetchall() == [("New",)]
    assert con.sql("SELECT count(*) FROM rejects").fetchall()[0][0] >= 2


# The views test covers the default scope; these, every filter (bound as typed parameters).
SCOPES = [
    Scope(agent="tz", include_tests=True),
    Scope(since=date(2026, 10, 1), until=date(2026, 10, 15), channel="voice_twilio_v1"),
]


@pytest.mark.parametrize("by", list(views.STATS))
def test_stats_in_the_same_order_on_both_engines(
    both: tuple[Any, Any], edge_warehouse: Path, by: str
) -> None:
    _, spark = both
    _views_of(edge_warehouse)
    for scope in SCOPES:
        duck = query.stats(edge_warehouse, by, scope)
        theirs = run.stats_table(spark, by, scope)
        _assert_same(duck, theirs, ordered=True)


def test_every_listed_timezone_is_one_the_jvm_knows(spark: Any) -> None:
    from pipeline.views import timezones

    jvm = set(spark.sparkContext._jvm.java.time.ZoneId.getAvailableZoneIds())
    assert set(timezones.names()) <= jvm


def _same_csv(left: str, right: str) -> None:
    a, b = list(csv.reader(io.StringIO(left))), list(csv.reader(io.StringIO(right)))
    assert len(a) == len(b) and a[0] == b[0]
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            if u != v:
                assert math.isclose(float(u), float(v), rel_tol=REL, abs_tol=ABS), (u, v, x)


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = tmp_path_factory.mktemp("spark-sample") / "warehouse"
    _ingest(warehouse, SAMPLES)
    return warehouse


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SESSIONS), *map(str, args)], capture_output=True, text=True, check=False, timeout=600
    )


def test_stats_csv_on_the_sample_is_duckdbs(spark: Any, sample_warehouse: Path) -> None:
    """`stats --engine spark --format csv`: the CLI once (by day, the longest), the other
    breakdowns through the same functions in this process's Spark."""
    by_cli = _cli("stats", "--by", "day", "--engine", "spark", "--spark-master", "local[1]",
                  "--format", "csv", "--warehouse", sample_warehouse)  # fmt: skip
    assert by_cli.returncode == 0, by_cli.stderr
    assert by_cli.stderr == ""
    duck = _cli("stats", "--by", "day", "--format", "csv", "--warehouse", sample_warehouse)
    _same_csv(duck.stdout, by_cli.stdout)
    assert len(by_cli.stdout.splitlines()) > 100
    # What `run.stats_rows` does, the views made once for the three.
    _views_of(sample_warehouse)
    for by in ("agent", "channel", "prompt-version"):
        duck = _cli("stats", "--by", by, "--format", "csv", "--warehouse", sample_warehouse)
        out = io.StringIO()
        with query.arrow_rows(run.stats_table(spark, by, Scope())) as rows:
            write(rows.columns, rows.batches, "csv", out, None)
        _same_csv(duck.stdout, out.getvalue())


def test_sql_on_spark_reads_and_refuses_writes(spark: Any, sample_warehouse: Path) -> None:
    _HELD["warehouse"] = sample_warehouse  # run.sql makes the sample's views
    out = io.StringIO()
    text = "SELECT agent_id, count(*) AS n FROM sessions GROUP BY agent_id ORDER BY agent_id"
    with run.sql(sample_warehouse, text, master="local[2]") as rows:
        write(rows.columns, rows.batches, "csv", out, None)
    duck = _cli("sql", text, "--format", "csv", "--warehouse", sample_warehouse)
    assert out.getvalue() == duck.stdout
    failing = run.sql(sample_warehouse, "SELECT nope FROM sessions", master="local[2]")
    with pytest.raises(query.QueryError, match=r"failed: .*UNRESOLVED"), failing:
        pass


def test_sessions_module_is_not_imported_with_pyspark() -> None:
    """pyspark in the same environment costs the DuckDB engine nothing: the CLI's reading
    path (schemas and pandera included) imports none of it."""
    code = (
        "import sys, schemas, pipeline.cli, pipeline.query, pipeline.views.dialects;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
