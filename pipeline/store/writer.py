"""How an ingest writes: the warehouse claimed and locked, leftovers cleaned, and the run's
files committed, rejects first and sessions last."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable

from pipeline import manifest
from pipeline.errors import WarehouseError
from pipeline.manifest import Manifest
from pipeline.store import database, files, location, lock, migrate, runs, tables
from pipeline.store.location import Warehouse
from pipeline.store.merge import MergeResult, partitions_folder
from pipeline.store.runs import Run
from pipeline.store.tables import Version


@dataclass
class Target:
    """What an ingest writes to: the tables as of the version it reads."""

    wh: Warehouse
    # None until the first commit creates them: a refused or failed first ingest leaves no
    # table behind.
    sessions: DeltaTable | None
    rejects: DeltaTable | None
    version: Version | None


@contextmanager
def writing(wh: Warehouse) -> Iterator[Target]:
    """Hold the warehouse for one ingest: claimed (a new or empty place becomes a warehouse,
    any other is refused untouched), locked, converted from the snapshot layout, cleaned of
    what killed runs left. The tables are made by the first commit."""
    if wh.local is not None:
        migrate.refuse_followed_copy(wh.local)
    claimed = location.claim(wh, migrate.is_snapshot_layout(wh))
    with lock.held(wh):
        if claimed == location.SNAPSHOT_LAYOUT or (
            wh.local is not None and migrate.is_snapshot_layout(wh)
        ):
            migrate.convert(wh)
        sessions, rejects = tables.load(wh, tables.SESSIONS), tables.load(wh, tables.REJECTS)
        version = tables.at(wh)
        if wh.local is not None:
            committed = set(version.runs) if version is not None else set()
            runs.clean(wh, committed)
            database.clean(wh)
            if rejects is not None:
                runs.drop_rejects(wh, rejects, committed, 0)
                rejects = tables.load(wh, tables.REJECTS)
        else:
            # Whether or not this ingest then has anything to do: a run killed after its
            # commit leaves its folder, and the next ingest of the same files skips them.
            runs.clean_temporary()
        yield Target(wh, version.sessions if version is not None else sessions, rejects, version)


def commit(
    target: Target, run: Run, merged: MergeResult, rejects: Path | None, body: Manifest
) -> None:
    """Commit the run: its files placed into the tables, its manifest written, its rejects
    committed, then its sessions: the commit that makes the run count."""
    wh = target.wh
    if target.sessions is None or target.rejects is None:
        sessions, rejects_table = tables.ensure(wh)
        if target.sessions is None:
            # This run merged against an empty warehouse. Another first ingest (on S3, where
            # no lock keeps it out) that committed since has sessions this merge never saw and
            # a run this manifest does not list (its rejects would be hidden): lose the race
            # here, as a commit on a table that moved on does.
            now = tables.at(wh)
            if now is not None and now.runs:
                raise tables.conflict(wh, f"{len(now.runs)} run(s) committed since this one began")
            target.sessions = sessions
        if target.rejects is None:
            target.rejects = rejects_table
    adds = files.place(wh, tables.SESSIONS, partitions_folder(run), run.placed)
    placed_rejects: list[str] = []
    if rejects is not None:
        reject_adds = files.place(wh, tables.REJECTS, rejects, placed_rejects)
    else:
        reject_adds = []
    with tables.errors(wh, tables.MANIFESTS):
        relative = manifest.write(body, wh, run.run_id)
    run.placed.append(f"{wh.filesystem()[1]}/{relative}")
    metadata = {tables.RUN_KEY: run.run_id, tables.MANIFEST_KEY: relative}
    if reject_adds:
        run.placed.extend(placed_rejects)
        tables.commit(
            wh, target.rejects, tables.REJECTS, reject_adds, [], metadata, exclusive=False
        )
        # The rejects table names them now: they stay (no reader counts them unless the
        # sessions commit follows; the next ingest takes them out if it does not).
        del run.placed[-len(placed_rejects) :]
    try:
        tables.commit(
            wh, target.sessions, tables.SESSIONS, adds, merged.removes, metadata, exclusive=True
        )
    except BaseException:
        # delta-rs may fail after writing the commit (a checkpoint it could not write): then
        # the run counts, and its rejects with it.
        if reject_adds and not committed(wh, run):
            # Its rejects must not count: no command of ours reads them (the manifest lists
            # no such run), but a Delta reader of the rejects table would, until the next
            # ingest took them out. The next ingest still does, should this fail too.
            runs.take_back_rejects(wh, run.run_id)
        raise


def committed(wh: Warehouse, run: Run) -> bool:
    """Whether the run's sessions commit has happened (the manifest lists the run)."""
    try:
        version = tables.at(wh)
    except WarehouseError:
        return False
    return version is not None and run.run_id in version.runs
