"""The snapshot layout before Delta (`current` link, `.snapshots/<run>/`), converted in place.

The conversion builds both Delta tables in `.migrating/` from the current snapshot's files
(hard links: nothing is copied), then swaps them in. A conversion killed at any point is
finished by the next ingest or `sessions migrate`; the snapshot's files stay until the swap
is complete, so nothing is lost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from deltalake.exceptions import DeltaError
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

from pipeline import views
from pipeline.errors import WarehouseError
from pipeline.store import location, tables
from pipeline.store.location import Warehouse
from schemas import PARTITION_COLUMN

SNAPSHOTS, CURRENT, MIGRATING = ".snapshots", "current", ".migrating"
_READY = "ready"  # in .migrating/ once both tables are committed there

# The snapshot layout's links, and their targets.
_LINKS = {
    CURRENT: None,  # .snapshots/<run>
    "sessions": f"{CURRENT}/sessions",
    "rejects": f"{CURRENT}/rejects",
    views.DATABASE: f"{CURRENT}/{views.DATABASE}",
}
_OWN = {SNAPSHOTS, ".staging", MIGRATING, ".lock", f"{views.DATABASE}.wal", *_LINKS}


def is_snapshot_layout(wh: Warehouse) -> bool:
    """Whether `wh` is a warehouse of the snapshot layout (marked version 1, or from before
    the marker with nothing but its own entries), or one whose conversion was cut short."""
    if wh.local is None or not wh.local.is_dir():
        return False
    if (wh.local / MIGRATING / _READY).exists():
        return True  # a conversion whose swap was cut short
    if _has_delta_tables(wh.local):
        return False  # whatever the marker or a stray `.migrating` say: never converted again
    if (wh.local / MIGRATING).is_dir():
        return True
    if location.marker_version(wh) == location.SNAPSHOT_LAYOUT:
        return True
    if (wh.local / location.MARKER).exists():
        return False
    names = set()
    for entry in wh.local.iterdir():
        name = entry.name
        if name.startswith(f".{CURRENT}.") and entry.is_symlink():
            continue  # a commit's link, left by a killed ingest
        names.add(name)
        if name not in _OWN:
            return False
        if name in _LINKS:
            if not entry.is_symlink():
                return False
            target = os.readlink(entry)
            expected = _LINKS[name]
            if expected is None:
                if not re.fullmatch(rf"{re.escape(SNAPSHOTS)}/[^/]+", target):
                    return False
            elif target != expected:
                return False
    return CURRENT in names or {"sessions", "rejects"} <= names


def _has_delta_tables(root: Path) -> bool:
    """Whether `root` holds a Delta sessions table of its own (not the snapshot layout's link)."""
    table = root / "sessions"
    return not table.is_symlink() and (table / "_delta_log").is_dir()


def refuse_followed_copy(folder: Path) -> None:
    """A snapshot-layout warehouse copied with its links followed has a `current` folder: it
    reads, but converting it would read the wrong snapshot; say how to copy it."""
    current = folder / CURRENT
    if current.is_dir() and not current.is_symlink():
        raise WarehouseError(
            f"{folder}/{CURRENT} is a folder, not a link: the warehouse was copied following "
            "its links; copy the original again keeping them (`cp -r`, `cp -a`, "
            "`shutil.copytree(symlinks=True)`) to convert and ingest into the copy"
        )


def convert(wh: Warehouse) -> bool:
    """Convert the snapshot layout at `wh` (lock held) into Delta tables; False if there was
    nothing to convert."""
    assert wh.local is not None
    root = wh.local
    if not is_snapshot_layout(wh):
        if _has_delta_tables(root) and not (root / MIGRATING / _READY).exists():
            # What a conversion killed as it finished left (or a stray folder of that name),
            # and a marker it had not rewritten yet.
            shutil.rmtree(root / MIGRATING, ignore_errors=True)
            if location.marker_version(wh) == location.SNAPSHOT_LAYOUT:
                location.write_marker(wh, location.FORMAT_VERSION, exclusive=False)
        return False
    refuse_followed_copy(root)
    try:
        _convert(wh, root / MIGRATING)
    except (OSError, DeltaError, duckdb.Error) as exc:
        # A full disk, a folder not ours to write, a file system without hard links: the
        # snapshot is untouched until the swap, and the swap can run again.
        detail = " ".join(str(exc).split())
        raise WarehouseError(
            f"cannot convert {wh} to Delta Lake tables: {detail}; nothing was lost: run "
            "`sessions migrate` again once that is fixed"
        ) from None
    return True


def _convert(wh: Warehouse, staging: Path) -> None:
    assert wh.local is not None
    root = wh.local
    if not (staging / _READY).exists():
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        # Marked first, so that a conversion cut short is known as ours from then on.
        if location.marker_version(wh) is None:
            location.write_marker(wh, location.SNAPSHOT_LAYOUT, exclusive=False)
        _build(root, staging)
        (staging / _READY).touch()
    _swap(wh, staging)


def _snapshot(root: Path) -> Path | None:
    link = root / CURRENT
    return link.resolve() if link.is_symlink() else None


def _build(root: Path, staging: Path) -> None:
    """Both Delta tables and the manifest in `staging`, from the current snapshot."""
    snapshot = _snapshot(root)
    wh = location.of(staging)
    body: dict[str, object] = {}
    if snapshot is not None and (snapshot / "manifest.json").exists():
        body = json.loads((snapshot / "manifest.json").read_text())
    ingests = body.get("ingests") or []
    assert isinstance(ingests, list)
    last_run = str(ingests[-1]["run_id"]) if ingests else f"migrated-{time.time_ns()}"
    # Sessions: every file of the snapshot, hard-linked at the same `date=` path.
    adds = []
    sessions = staging / tables.SESSIONS
    sessions.mkdir()
    for path in (
        sorted((snapshot / "sessions").glob(f"{PARTITION_COLUMN}=*/*.parquet")) if snapshot else []
    ):
        target = sessions / path.parent.name / path.name
        target.parent.mkdir(exist_ok=True)
        os.link(path, target)
        day = path.parent.name.split("=", 1)[1]
        adds.append(_add(target, f"{path.parent.name}/{path.name}", day))
    # Rejects: each ingest's file, rewritten with its run's id (the file's name holds it).
    reject_adds = []
    rejects = staging / tables.REJECTS
    rejects.mkdir()
    for path in sorted((snapshot / "rejects").glob("*.parquet")) if snapshot else []:
        run_id = path.stem.removeprefix("ingest-")
        target = rejects / f"part-{run_id}.parquet"
        _rewrite_rejects(path, target, run_id)
        reject_adds.append(_add(target, target.name, None))
    manifests = staging / "manifests"
    manifests.mkdir()
    relative = f"manifests/{last_run}.json"
    (staging / relative).write_text(
        json.dumps(
            {
                "version": 1,
                "pii_mode": body.get("pii_mode"),
                "key_fingerprint": body.get("key_fingerprint"),
                "ingests": ingests,
            },
            indent=1,
        )
        + "\n"
    )
    metadata = {tables.RUN_KEY: last_run, tables.MANIFEST_KEY: relative, "sessions.migrated": True}
    for name, schema, actions, partitions in (
        (tables.REJECTS, tables.rejects_schema(), reject_adds, None),
        (tables.SESSIONS, tables.sessions_schema(), adds, [PARTITION_COLUMN]),
    ):
        create_table_with_add_actions(
            wh.table(name),
            tables.schema_for_delta(schema),
            actions,
            mode="error",
            partition_by=partitions,
            configuration=tables.PROPERTIES,
            commit_properties=CommitProperties(custom_metadata=metadata),
        )


def _add(path: Path, relative: str, day: str | None) -> AddAction:
    rows = pq.read_metadata(path).num_rows
    stat = path.stat()
    return tables.add_action(relative, stat.st_size, rows, day, int(stat.st_mtime * 1000))


def _rewrite_rejects(source: Path, target: Path, run_id: str) -> None:
    present = set(pq.read_schema(source).names)
    columns = ", ".join(
        f'"{name}"' if name in present else f'CAST(NULL AS {kind}) AS "{name}"'
        for name, kind in views.REJECT_COLUMNS
        if name != "run_id"
    )
    con = duckdb.connect()
    try:
        con.execute(f"""
            COPY (SELECT {columns}, {views.quote(run_id)} AS run_id
                  FROM read_parquet({views.sql_path(source)}, hive_partitioning = false))
            TO {views.sql_path(target)} (FORMAT parquet, COMPRESSION zstd)
        """)
    finally:
        con.close()


def _swap(wh: Warehouse, staging: Path) -> None:
    """Put the built tables in place of the links, then mark the warehouse as Delta; each
    step can run again after a kill."""
    assert wh.local is not None
    root = wh.local
    for name in (views.DATABASE, "sessions", "rejects"):
        link = root / name
        if link.is_symlink():
            link.unlink()
    for name in ("sessions", "rejects", "manifests"):
        if (staging / name).exists():
            if (root / name).exists() and not (root / name).is_symlink():
                # Never replaced: a table there is data; the conversion stops, touching nothing.
                raise WarehouseError(
                    f"{root / name} exists beside the converted {staging / name}: move one of "
                    "them away, then run `sessions migrate` again"
                )
            os.replace(staging / name, root / name)
    location.write_marker(wh, location.FORMAT_VERSION, exclusive=False)
    (root / CURRENT).unlink(missing_ok=True)
    for leftover in (SNAPSHOTS, ".staging", MIGRATING):
        shutil.rmtree(root / leftover, ignore_errors=True)
    for stray in root.glob(f".{CURRENT}.*"):
        stray.unlink(missing_ok=True)
