"""`<warehouse>/sessions.duckdb`: DuckDB views over one version's files, for any DuckDB client.

Its views name the version's Parquet files by absolute path (DuckDB reads no Delta log
without its extension, which cannot be installed everywhere), and a guard makes a client
that opens a copy get an error instead of the original's rows: the views read only where
the database file is the one they were built for. A newer version does not make them fail:
they read their own version whole (its files stay until vacuum) until the rebuild that
follows every commit, so that a dashboard reading them never sees an error or half an ingest.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import duckdb

from pipeline import views
from pipeline.errors import WarehouseError
from pipeline.store import location, lock, relations, tables
from pipeline.store.location import Warehouse
from pipeline.store.tables import Version


def path(wh: Warehouse) -> Path:
    assert wh.local is not None
    return wh.local / views.DATABASE


def _guarded(source: str, wh: Warehouse) -> str:
    """`source`, readable only from this database file where it was built."""
    database = path(wh)
    places = sorted({str(database.absolute()), str(database.resolve())})
    refusal = views.quote(
        f"this sessions.duckdb was built for {places[0]}, not where it is now (a moved or "
        "copied warehouse): run `sessions rebuild --warehouse <this folder>`"
    )
    return f"""(SELECT * FROM {source} WHERE CASE
        WHEN EXISTS (SELECT 1 FROM duckdb_databases()
                     WHERE path IN ({", ".join(views.quote(p) for p in places)}))
        THEN true ELSE error({refusal}) END)"""


def _sources(wh: Warehouse, version: Version | None) -> dict[str, str]:
    """What the database's `sessions` and `rejects` views read, guarded."""
    con = duckdb.connect()  # only to name relations; local ones register nothing
    try:
        return {
            "sessions": _guarded(relations.sessions_source(con, version), wh),
            "rejects": _guarded(relations.rejects_source(con, version), wh),
        }
    finally:
        con.close()


def build(wh: Warehouse, version: Version | None) -> None:
    """Build the database for `version`, replacing the one there in one rename."""
    if wh.local is None:
        return
    target = path(wh)
    _remove_leftovers(wh)
    building = wh.local / f".{views.DATABASE}.{uuid.uuid4().hex[:8]}"
    try:
        sources = _sources(wh, version)
        views.build_database(building, sources["sessions"], sources["rejects"])
        os.replace(building, target)
        # A write-ahead log left beside the database by a client that opened it for writing
        # and died belongs to the database just replaced; replayed on the new one it would
        # do harm.
        Path(f"{target}.wal").unlink(missing_ok=True)
    except (OSError, duckdb.Error) as exc:
        building.unlink(missing_ok=True)
        raise WarehouseError(f"cannot build {target}: {location.describe(exc)}") from None


def _remove_leftovers(wh: Warehouse) -> None:
    """What a rebuild killed midway left. The caller holds the database lock: no rebuild runs."""
    assert wh.local is not None
    for leftover in wh.local.glob(f".{views.DATABASE}.*"):
        leftover.unlink(missing_ok=True)


def clean(wh: Warehouse) -> None:
    """Remove what killed rebuilds left (an ingest does it, as it cleans up after killed runs)."""
    if wh.local is None:
        return
    with lock.held(wh, wait=True, name=lock.DATABASE_LOCK):
        _remove_leftovers(wh)


def current(wh: Warehouse, version: Version | None) -> bool:
    """Whether the database reads exactly `version`, from where the warehouse is now."""
    try:
        con = duckdb.connect(str(path(wh)), read_only=True)
    except duckdb.Error:
        return False
    try:
        rows = con.sql(
            "SELECT view_name, sql, comment FROM duckdb_views() "
            "WHERE view_name IN ('sessions', 'rejects')"
        ).fetchall()
    except duckdb.Error:
        return False
    finally:
        con.close()
    # Views of another release (the comment on `sessions` names the definitions).
    if {name: comment for name, _, comment in rows}.get("sessions") != views.definitions_id():
        return False
    # The places each view names: DuckDB keeps a view's SQL without its comments, and the
    # view files' own literals name no place; so the places are those of the sources.
    found = {name: _literals(text) for name, text, _ in rows}
    expected = {name: _literals(text) for name, text in _sources(wh, version).items()}
    return found == expected


def _literals(text: str) -> set[str]:
    """The string literals that name places: files, folders, the database itself."""
    return {
        literal.replace("''", "'")
        for literal in re.findall(r"'((?:[^']|'')*)'", text)
        if literal.startswith("/")
    }


def refresh(wh: Warehouse, version: Version | None = None) -> None:
    """Rebuild the database if it does not read the latest version (`version`, where the
    caller has just read it) where the warehouse is now: moved, copied, or left behind by a
    run killed after its commit. Where it cannot be written (a read-only copy) it is left as
    it is: its guards refuse to read."""
    if wh.local is None:
        return
    if version is not None and current(wh, version):
        return
    try:
        with lock.held(wh, wait=True, name=lock.DATABASE_LOCK):
            latest = tables.at(wh)
            if not current(wh, latest):
                build(wh, latest)
    except WarehouseError:
        pass
