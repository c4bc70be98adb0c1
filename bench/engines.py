"""DuckDB and Spark on the same views: Spark's local start, then each view's time on each
engine, warm (the median of `repeat` runs after one to warm up), on one warehouse. So that a
user knows when each engine is the right one. `make bench` runs it on 1M sessions; alone:

    .venv/bin/python bench/engines.py --sessions 20000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path

from measure import BIN, python, script

VIEWS = (
    "agent_duration_stats",
    "channel_duration_stats",
    "prompt_version_duration_stats",
    "agent_daily_duration_stats",
    "prompt_version_changes",
)

_CODE = """
import json, statistics, sys, time
from pipeline import query
from pipeline.spark import run, session
from pipeline.store import location

warehouse, views, repeat = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])

def median(read):
    read()  # warm
    runs = []
    for _ in range(repeat):
        started = time.monotonic(); read(); runs.append(time.monotonic() - started)
    return statistics.median(runs)

started = time.monotonic()
con = query.connect(warehouse)
duck_open = time.monotonic() - started
duck = {v: median(lambda: con.sql(f"SELECT * FROM {v}").fetchall()) for v in views}
started = time.monotonic()
spark = session.start(location.of(warehouse))
spark_start = time.monotonic() - started
started = time.monotonic()
run.connect(warehouse)
spark_views = time.monotonic() - started
theirs = {v: median(lambda: spark.sql(f"SELECT * FROM {v}").toArrow()) for v in views}
print(json.dumps({"duckdb_open": duck_open, "spark_start": spark_start,
                  "spark_views": spark_views, "duckdb": duck, "spark": theirs}))
"""


def times(warehouse: Path, repeat: int) -> dict[str, object] | None:
    """The measurements, or None where Spark is not installed (`make spark`)."""
    if importlib.util.find_spec("pyspark") is None:
        return None
    command = [*python(_CODE), str(warehouse), ",".join(VIEWS), str(repeat)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    found: dict[str, object] = json.loads(output.splitlines()[-1])
    return found


def line(measured: dict[str, object] | None, sessions: int) -> str:
    """The one line of results.md."""
    if measured is None:
        return "Engines: Spark not measured, it is not installed (`make spark`)."
    duck, spark = measured["duckdb"], measured["spark"]
    assert isinstance(duck, dict) and isinstance(spark, dict)
    per_view = ", ".join(f"{v} {duck[v]:.2f} / {spark[v]:.2f} s" for v in VIEWS)
    return (
        f"Engines on {sessions:,} sessions (`--engine`): Spark local start "
        f"{measured['spark_start']:.1f} s and its views {measured['spark_views']:.1f} s "
        f"(DuckDB opens them in {measured['duckdb_open']:.2f} s); each view warm, "
        f"DuckDB / Spark: {per_view}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sessions-engines-") as folder:
        work = Path(folder)
        export = work / "sessions.ndjson"
        exports = Path(__file__).resolve().parent / "exports.py"
        subprocess.run(script(exports, "ndjson", export, args.sessions, 1, 0), check=True)
        key = {"SESSIONS_PII_KEY": "benchmark key, 32 bytes or longer"}
        subprocess.run(
            [str(BIN / "sessions"), "ingest", str(export), "-w", str(work / "wh"), "-q"],
            check=True,
            env={**os.environ, **key},
        )
        print(line(times(work / "wh", args.repeat), args.sessions))


if __name__ == "__main__":
    main()
