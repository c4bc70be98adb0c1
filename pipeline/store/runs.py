"""One ingest's identity and scratch space, and what killed ingests leave behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from pipeline.errors import WarehouseError
from pipeline.store import tables
from pipeline.store.location import Warehouse

STAGING = ".staging"
# A run's id, as it starts the names of the files it writes: `part-<run>-<n>.parquet`.
RUN_ID = r"\d{8}T\d{6}\d{6}Z-[0-9a-f]{8}"
_OWN_FILE = re.compile(rf"part-({RUN_ID})[-.]")
# An S3 warehouse's run works in a temporary folder named with its process, so that a later
# run can tell the folders of killed runs (whose process is gone) from running ones.
_TEMPORARY = re.compile(rf"sessions-{RUN_ID}-pid(\d+)-")


@dataclass(frozen=True)
class Run:
    """One ingest: its id, when it started, and a local folder for its work (inside a local
    warehouse, so that its files move into the tables with a rename)."""

    wh: Warehouse
    run_id: str
    started: datetime
    staging: Path
    # What the run put in the warehouse, in the warehouse's filesystem, that no commit names
    # yet: removed if the run does not commit.
    placed: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> Path:
        return self.staging / "accepted"

    @property
    def rejected(self) -> Path:
        return self.staging / "rejected"


def start(wh: Warehouse) -> Run:
    now = datetime.now(UTC)
    run_id = now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8]
    if wh.local is not None:
        staging = wh.local / STAGING / run_id
    else:
        staging = Path(tempfile.mkdtemp(prefix=f"sessions-{run_id}-pid{os.getpid()}-"))
    run = Run(wh, run_id, now, staging)
    run.accepted.mkdir(parents=True)
    run.rejected.mkdir(parents=True)
    return run


def abandon(run: Run, committed: bool) -> None:
    """Remove the run's scratch space, and, if it did not commit, what it placed in the
    warehouse. (After a SIGKILL nothing runs this: the next ingest on a local warehouse
    removes such files, `sessions vacuum` anywhere.)"""
    shutil.rmtree(run.staging, ignore_errors=True)
    if committed or not run.placed:
        return
    fs, _ = run.wh.filesystem()
    for placed in run.placed:
        # Gone already, or unreachable: vacuum removes it later.
        with contextlib.suppress(OSError):
            fs.delete_file(placed)


def clean_temporary() -> None:
    """Remove the temporary folders of S3 runs that were killed (no lock, and no warehouse
    folder to clean, would find them otherwise)."""
    for folder in Path(tempfile.gettempdir()).glob("sessions-*-pid*-*"):
        found = _TEMPORARY.match(folder.name)
        if found and not _alive(int(found.group(1))) and _own(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _own(folder: Path) -> bool:
    try:
        return folder.stat().st_uid == os.getuid()
    except OSError:
        return False


def run_of(name: str) -> str | None:
    """The run that wrote a file of ours, from its name."""
    found = _OWN_FILE.search(name)
    return found.group(1) if found else None


def started(run_id: str) -> datetime | None:
    try:
        return datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def clean(wh: Warehouse, committed_runs: set[str]) -> None:
    """On a local warehouse whose lock is held: remove what runs that never committed left
    (staging folders, data files, manifests); their rejects rows are `drop_rejects`' work."""
    assert wh.local is not None
    shutil.rmtree(wh.local / STAGING, ignore_errors=True)
    named_by: dict[Path, _Named] = {}  # read once, when a file may have to go
    for name in (tables.SESSIONS, tables.REJECTS):
        folder = wh.local / name
        if not folder.is_dir():
            continue
        for path in folder.rglob("part-*.parquet"):
            if "_delta_log" in path.parts:
                continue
            found = _OWN_FILE.match(path.name)
            if not found or found.group(1) in committed_runs:
                continue
            # A file that a commit named stays for the versions that read it (a rejects file
            # of a run whose sessions commit failed: `drop_rejects` takes it out, vacuum
            # deletes it; a sessions file of a run the manifest does not list, which only a
            # manifest restored from an older backup gives); one no commit ever named was
            # placed by a run killed before its commit: nothing reads it.
            if path.relative_to(folder).as_posix() not in _ever_named(folder, named_by).files:
                path.unlink(missing_ok=True)
    manifests = wh.local / "manifests"
    for stray in manifests.glob("*.json") if manifests.is_dir() else []:
        if stray.stem not in committed_runs and re.fullmatch(RUN_ID, stray.stem):
            # Not one a commit of the sessions table names (its manifest: the same case).
            named = _ever_named(wh.local / tables.SESSIONS, named_by)
            if f"manifests/{stray.name}" not in named.manifests:
                stray.unlink(missing_ok=True)


@dataclass
class _Named:
    """What a table's commits named: data files, and manifests."""

    files: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)


def _ever_named(folder: Path, cache: dict[Path, _Named]) -> _Named:
    """The data files any commit of the local table at `folder` added that its log still
    holds, and those of its latest version (which a checkpoint may hold instead); with the
    manifests its commits named."""
    if folder in cache:
        return cache[folder]
    named = cache[folder] = _Named()
    log = entry = folder / "_delta_log"
    try:
        for entry in sorted(log.glob("*.json")):
            for line in entry.read_text().splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    named.files.add(unquote(action["add"]["path"]))
                if isinstance(info := action.get("commitInfo"), dict):
                    named.manifests.add(str(info.get(tables.MANIFEST_KEY)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WarehouseError(
            f"cannot read {entry}: {exc}; a file in a table's _delta_log that is not one of "
            "its commits may be moved elsewhere"
        ) from None
    with contextlib.suppress(DeltaError, OSError):  # no table yet: nothing named
        found = tables.files_of(DeltaTable(str(folder)), str(folder))
        named.files.update(unquote(f.path) for f in found)
    return named


def take_back_rejects(wh: Warehouse, run_id: str) -> None:
    """Take the rejects of run `run_id`, whose sessions commit failed, out of the rejects
    table again; at best: what fails here, the next ingest's `drop_rejects` does."""
    with contextlib.suppress(Exception):
        table = tables.load(wh, tables.REJECTS)
        if table is None:
            return
        mine = [
            tables.remove_action(f)
            for f in tables.files_of(table, wh.table(tables.REJECTS))
            if run_of(f.path) == run_id
        ]
        if mine:
            tables.commit(wh, table, tables.REJECTS, [], mine, {}, exclusive=False)


def drop_rejects(wh: Warehouse, table: DeltaTable, committed: set[str], hours: int) -> None:
    """Take out of the rejects table the rows of runs that never committed their sessions
    (killed between the two commits). On object storage, where no lock keeps other writers
    out, only runs that started more than `hours` ago: a younger one may be committing."""
    cutoff = datetime.now(UTC) - timedelta(hours=hours)
    dead = []
    for stored in tables.files_of(table, wh.table(tables.REJECTS)):
        found = run_of(stored.path)
        if found is None or found in committed:
            continue
        begun = started(found)
        if wh.local is not None or (begun is not None and begun < cutoff):
            dead.append(stored)
    if dead:
        removes = [tables.remove_action(f) for f in dead]
        tables.commit(wh, table, tables.REJECTS, [], removes, {}, exclusive=False)
