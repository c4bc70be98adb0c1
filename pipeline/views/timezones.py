"""The timezones whose local times the views compute: one list, shipped with the package.

An agent's timezone outside this list is read as UTC, by every engine alike. The list is the
IANA names both DuckDB (ICU) and the JVM (Spark) know: DuckDB has names the JVM lacks
(`America/Coyhaique`, the three-letter `ACT`, `AET`, ...), and Spark raises on a zone it does
not know, so a name only one engine knows would give two answers or an error. The ingest
derives `local_date` by the same list (`pipeline/store/merge.py`).

Regenerate after a DuckDB or Java upgrade with `python -m pipeline.views.timezones` (needs the
Spark extra); `tests/spark/test_timezones.py` fails while a listed name is unknown to either.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

FILE = "timezones.txt"


@cache
def names() -> tuple[str, ...]:
    """The listed timezone names, sorted."""
    text = resources.files(__package__).joinpath(FILE).read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def sql_list() -> str:
    """The names as a comma-separated list of SQL string literals, for `IN (...)`."""
    # IANA names hold no quote; doubled all the same, as every SQL dialect reads it.
    return ", ".join("'" + name.replace("'", "''") + "'" for name in names())


def _regenerate() -> None:  # pragma: no cover - a maintenance step, needs Java
    import duckdb
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway()  # type: ignore[no-untyped-call]
    try:
        jvm = set(gateway.jvm.java.time.ZoneId.getAvailableZoneIds())
    finally:
        gateway.shutdown()
    rows = duckdb.connect().execute("SELECT name FROM pg_timezone_names()").fetchall()
    duck = {str(row[0]) for row in rows}
    path = resources.files(__package__).joinpath(FILE)
    with resources.as_file(path) as file:
        file.write_text("".join(f"{name}\n" for name in sorted(jvm & duck)))


if __name__ == "__main__":
    _regenerate()
