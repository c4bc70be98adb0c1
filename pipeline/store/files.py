"""New Parquet files into a table's folder, and the add actions that commit them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from pipeline.store import tables
from pipeline.store.location import Warehouse
from schemas import PARTITION_COLUMN


def place(wh: Warehouse, table: str, staged: Path, placed: list[str]) -> list[AddAction]:
    """Move (local) or upload (S3) every Parquet file below `staged` into `table`, at the
    same relative path (`date=YYYY-MM-DD/name` for sessions), and the actions that add them.
    Until a commit names them, no reader sees them; each is added to `placed` once there."""
    files = sorted(staged.rglob("*.parquet"))
    actions = []
    fs, root = wh.filesystem()
    for path in files:
        relative = path.relative_to(staged).as_posix()
        rows = pq.read_metadata(path).num_rows
        size = path.stat().st_size
        target = f"{root}/{table}/{relative}"
        placed.append(target)
        if wh.local is not None:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        else:
            pafs.copy_files(
                str(path),
                target,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=fs,
            )
        day = _day(relative)
        actions.append(tables.add_action(relative, size, rows, day, int(time.time() * 1000)))
    return actions


def _day(relative: str) -> str | None:
    folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
    prefix = f"{PARTITION_COLUMN}="
    return folder[len(prefix) :] if folder.startswith(prefix) else None
