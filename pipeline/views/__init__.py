"""The DuckDB views, one `.sql` file each, and the one function that loads them."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb

from pipeline.views import timezones

# In dependency order: each file may use the relations of the files before it.
VIEW_FILES = (
    "sessions.sql",
    "rejects.sql",
    "sessions_in_scope.sql",
    "agent_duration_stats.sql",
    "channel_duration_stats.sql",
    "prompt_version_duration_stats.sql",
    "agent_daily_duration_stats.sql",
    "prompt_version_changes.sql",
)

# What `sessions stats --by` names, and the relation that answers it.
STATS = {
    "agent": "agent_duration_stats",
    "channel": "channel_duration_stats",
    "prompt-version": "prompt_version_duration_stats",
    "day": "agent_daily_duration_stats",
}

DATABASE = "sessions.duckdb"
# Written in the oldest storage format DuckDB 1.x reads, so every 1.x client opens it.
STORAGE_VERSION = "v1.0.0"

REJECT_COLUMNS = (
    ("ingested_at", "TIMESTAMPTZ"),
    ("source_file", "VARCHAR"),
    ("line", "BIGINT"),
    ("element", "BIGINT"),
    ("item", "BIGINT"),
    ("position", "VARCHAR"),
    ("record", "VARCHAR"),
    ("reasons", "STRUCT(field VARCHAR, rule VARCHAR, value VARCHAR)[]"),
    ("reason", "VARCHAR"),
    ("run_id", "VARCHAR"),
)


def sql_text(name: str) -> str:
    """The text of one view file, as it stands in the repository."""
    return resources.files(__package__).joinpath(name).read_text()


def statements(sessions: str, rejects: str, known_timezones: str | None = None) -> list[str]:
    """Every view file's SQL, reading the relations `sessions` (the stored fields of one
    version's sessions) and `rejects` (its quarantine), as `pipeline.store.relations` gives
    them: the files of one version named one by one, so that a query reads one whole version
    however ingests commit meanwhile. `known_timezones` stands for the list of timezone names
    (`timezones.sql_list()` by default). Hive partitioning is never on: DuckDB would take
    `key=value` from every folder of the path, the warehouse's own parents included; the
    `sessions` view derives the partition, `utc_date`, from the timestamp instead.
    """
    replacements = {
        "{{ sessions_parquet }}": sessions,
        "{{ rejects_parquet }}": rejects,
        "{{ known_timezones }}": known_timezones or timezones.sql_list(),
    }
    result: list[str] = []
    for name in VIEW_FILES:
        text = sql_text(name)
        for marker, source in replacements.items():
            text = text.replace(marker, source)
        result.extend(s for s in text.split(";\n") if s.strip())
    return result


@cache
def definitions_id() -> str:
    """What names this release's view definitions: the database built from other ones (an
    older release's) is built again, so that a fixed view reaches every client."""
    text = "\n".join(sql_text(name) for name in VIEW_FILES) + timezones.sql_list()
    return "sessions-analytics views " + hashlib.sha256(text.encode()).hexdigest()[:16]


def quote(text: str) -> str:
    """A DuckDB string literal, quotes and all."""
    return "'" + text.replace("'", "''") + "'"


def sql_path(path: Path) -> str:
    """A path as a DuckDB string literal."""
    return quote(str(path))


def empty_relation(columns: tuple[tuple[str, str], ...]) -> str:
    """A relation with `columns` (name, DuckDB type) and no rows: with no Parquet file yet,
    a query answers with no rows instead of a missing-file error."""
    typed = ", ".join(f'cast(null as {duck_type}) as "{name}"' for name, duck_type in columns)
    return f"(select {typed} limit 0)"


def build_database(path: Path, sessions: str, rejects: str) -> None:
    """Create the DuckDB database of views at `path` (which must not exist yet)."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_path(path)} AS warehouse (STORAGE_VERSION '{STORAGE_VERSION}')")
        con.execute("USE warehouse")
        for statement in statements(sessions, rejects):
            con.execute(statement)
        con.execute(f"COMMENT ON VIEW sessions IS {quote(definitions_id())}")
        con.execute("USE memory")
        con.execute("DETACH warehouse")
    finally:
        con.close()
