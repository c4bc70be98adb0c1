"""A warehouse version's tables as DuckDB relations: Parquet files named one by one on a
local disk, deltalake's Arrow dataset on object storage (no DuckDB extension needed)."""

from __future__ import annotations

import uuid

import duckdb

from pipeline import views
from pipeline.store.tables import StoredFile, Version
from schemas import PARTITION_COLUMN, STORED_FIELDS

# The partition a stored row is in: its file's folder, `date=YYYY-MM-DD`, the last of its path.
FOLDER_DATE = f"CAST(regexp_extract(filename, '/{PARTITION_COLUMN}=([0-9-]+)/[^/]*$', 1) AS DATE)"


def parquet_files(files: list[StoredFile], *, filename: bool = False) -> str:
    """The files, read by DuckDB. Never with its Hive partitioning, which takes `key=value`
    from every folder of the path: a warehouse below `.../date=1999-01-01/` would read every
    session as of that date."""
    paths = "[" + ", ".join(views.quote(f.location) for f in files) + "]"
    extra = ", filename = true" if filename else ""
    return f"read_parquet({paths}, hive_partitioning = false, union_by_name = true{extra})"


def stored(
    con: duckdb.DuckDBPyConnection,
    version: Version | None,
    days: set[str] | None = None,
    files: list[StoredFile] | None = None,
) -> str:
    """The version's stored sessions (of `days` only, or of `files` only, where given) with
    their partition as `date`, as a relation for `con`."""
    columns = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    if version is None:
        return _empty_stored()
    if files is None:
        files = [f for f in version.session_files() if days is None or str(f.day) in days]
    elif version.wh.local is None:
        days = {str(f.day) for f in files}  # on object storage, files by their days
    if version.wh.local is not None:
        if not files:
            return _empty_stored()
        return (
            f'(SELECT {columns}, {FOLDER_DATE} AS "{PARTITION_COLUMN}" '
            f"FROM {parquet_files(files, filename=True)})"
        )
    if days is not None and not days:
        return _empty_stored()
    filters = [(PARTITION_COLUMN, "in", sorted(days))] if days is not None else None
    dataset = version.sessions.to_pyarrow_dataset(partitions=filters)
    return f'(SELECT {columns}, "{PARTITION_COLUMN}" FROM {register(con, dataset)})'


def sessions_source(con: duckdb.DuckDBPyConnection, version: Version | None) -> str:
    """What the `sessions` view reads: the stored fields of the version's sessions."""
    columns = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    if version is None:
        return views.empty_relation(tuple((f.name, f.duckdb_type) for f in STORED_FIELDS))
    if version.wh.local is not None:
        files = version.session_files()
        if not files:
            return views.empty_relation(tuple((f.name, f.duckdb_type) for f in STORED_FIELDS))
        return f"(SELECT {columns} FROM {parquet_files(files)})"
    return f"(SELECT {columns} FROM {register(con, version.sessions.to_pyarrow_dataset())})"


def rejects_source(con: duckdb.DuckDBPyConnection, version: Version | None) -> str:
    """What the `rejects` view reads: the rows of the runs the version's manifest lists (a run
    killed between its two commits left rows that no version counts)."""
    columns = ", ".join(f'"{name}"' for name, _ in views.REJECT_COLUMNS)
    if version is None or not version.runs:
        return views.empty_relation(views.REJECT_COLUMNS)
    runs = "[" + ", ".join(views.quote(run) for run in version.runs) + "]"
    if version.wh.local is not None:
        files = version.reject_files()
        if not files:
            return views.empty_relation(views.REJECT_COLUMNS)
        source = parquet_files(files)
    else:
        assert version.rejects is not None
        source = register(con, version.rejects.to_pyarrow_dataset())
    return f"(SELECT {columns} FROM {source} WHERE list_contains({runs}, run_id))"


def register(con: duckdb.DuckDBPyConnection, dataset: object) -> str:
    name = f"_arrow_{uuid.uuid4().hex[:12]}"
    con.register(name, dataset)
    return name


def _empty_stored() -> str:
    columns = (*((f.name, f.duckdb_type) for f in STORED_FIELDS), (PARTITION_COLUMN, "DATE"))
    return views.empty_relation(columns)
