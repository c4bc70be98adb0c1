"""The warehouse on disk: the sessions dataset and the quarantine, and how an ingest commits.

Layout of `<warehouse>/`:

    sessions -> current/sessions     Hive-partitioned Parquet, `date=YYYY-MM-DD/*.parquet`
    rejects  -> current/rejects      the quarantine, one Parquet file per ingest
    sessions.duckdb -> current/sessions.duckdb   DuckDB views over the snapshot's files
    current  -> .snapshots/<run>     the committed snapshot
    .snapshots/<run>/                one snapshot per ingest; unchanged files are hard links
    .staging/<run>/                  a running ingest's work; never read by anyone else
    .sessions-warehouse              what the folder is, and its format version
    .lock                            the ingest lock

Every link is relative and every reader resolves `current` where the folder is now, so a
warehouse can be moved or copied (with its links: `cp -r`, `cp -a`, `mv`). An ingest works
only in a folder that is new, empty, or marked as a warehouse: it deletes what it left in
`.snapshots` and `.staging`, which in another folder would be someone else's files.

An ingest builds a whole new snapshot beside the current one, then swaps the `current` link
with one `rename`: a reader sees every file of an ingest or none, and a crash before the swap
leaves the warehouse as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline import memory, views
from pipeline.errors import WarehouseError
from schemas import FIELD_NAMES, PARTITION_COLUMN, SESSION_FIELDS, STORED_FIELDS

SNAPSHOTS, STAGING, CURRENT = ".snapshots", ".staging", "current"
# The file that marks a folder as a warehouse, and what it says.
MARKER = ".sessions-warehouse"
FORMAT, FORMAT_VERSION = "sessions-warehouse", 1
# DuckDB's memory budget unless the ingest says otherwise (why this figure: pipeline/memory.py).
MEMORY_LIMIT = memory.MEMORY_LIMIT
# A partition that has this many files is rewritten as one file when an ingest adds to it.
MAX_FILES = 8
# Days one partitioned write covers: with every day of a long export open at once, the write
# runs short of memory and spills (42 days of 1M sessions: 2.6 s; 16 at a time: 1.9 s).
DAYS_PER_WRITE = 16


@dataclass(frozen=True)
class Run:
    """One ingest's identity and scratch space."""

    warehouse: Path
    run_id: str
    started: datetime

    @property
    def staging(self) -> Path:
        return self.warehouse / STAGING / self.run_id

    @property
    def accepted(self) -> Path:
        return self.staging / "accepted"

    @property
    def rejected(self) -> Path:
        return self.staging / "rejected"

    @property
    def snapshot(self) -> Path:
        return self.warehouse / SNAPSHOTS / self.run_id


@dataclass(frozen=True)
class MergeResult:
    sessions_new: int
    sessions_updated: int
    sessions_unchanged: int
    partitions_written: int


@contextmanager
def locked(warehouse: Path) -> Iterator[None]:
    """Hold the warehouse's ingest lock. The OS releases it when the process dies, so a
    crashed ingest never leaves it stuck. A new or empty folder becomes a warehouse; a folder
    that is neither empty nor a warehouse is refused before anything in it is touched."""
    usable(warehouse)
    claim(warehouse)
    try:
        handle = (warehouse / ".lock").open("a+")
    except OSError as exc:
        raise WarehouseError(f"cannot open the warehouse {warehouse}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(
                f"another ingest is running on {warehouse}; run again when it has finished"
            ) from None
        yield


def claim(warehouse: Path) -> None:
    """Make sure `warehouse` is a warehouse that an ingest may write: mark a new or empty
    folder, or one in the layout before the marker, as one; refuse any other folder."""
    try:
        if _marked(warehouse):
            if (warehouse / CURRENT).is_dir() and not (warehouse / CURRENT).is_symlink():
                raise WarehouseError(
                    f"{warehouse}/{CURRENT} is a folder, not a link: the warehouse was copied "
                    "following its links; copy the original again keeping them (`cp -r`, "
                    "`cp -a`, `shutil.copytree(symlinks=True)`) to ingest into the copy"
                )
            return
        if warehouse.exists() and not _is_warehouse_layout(warehouse):
            raise WarehouseError(
                f"{warehouse} is not empty and is not a warehouse (it has no {MARKER}): "
                "give --warehouse a new or empty folder; nothing in it was touched"
            )
        warehouse.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"format": FORMAT, "version": FORMAT_VERSION}) + "\n"
        # O_EXCL: of two ingests claiming one new folder, one writes the marker, and the
        # other finds it and then waits for the lock (or is told the first one runs).
        fd = os.open(warehouse / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as marker:
            marker.write(body)
    except FileExistsError:
        _marked(warehouse)  # another ingest marked it first: its marker is checked as any
    except NotADirectoryError:
        raise WarehouseError(f"{warehouse} is a file, not a warehouse folder") from None
    except OSError as exc:
        raise WarehouseError(
            f"cannot open the warehouse {warehouse}: {exc.strerror}: {exc.filename or warehouse}"
        ) from None


# Characters DuckDB does not take in a file's path as written: `?` starts the query string of
# a database path, and `\` is read as a folder separator.
_UNUSABLE = ("?", "\\")


def usable(warehouse: Path) -> None:
    """Refuse, before anything is written, a warehouse path that DuckDB would misread."""
    found = [c for c in _UNUSABLE if c in str(warehouse.absolute())]
    if found:
        raise WarehouseError(
            f"{warehouse}: a warehouse path may not hold {' or '.join(map(repr, found))} "
            "(DuckDB misreads them in file paths): choose another folder"
        )


def readable_snapshot(warehouse: Path) -> Path:
    """The committed snapshot a reader reads, resolved once; an error that says what to do
    when `warehouse` is not a warehouse or holds no ingest yet. Reads only: it marks nothing."""
    ingest_first = f"run `sessions ingest EXPORTS --warehouse {warehouse}` first"
    usable(warehouse)
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} does not exist: {ingest_first}")
    try:
        marked = _marked(warehouse)
        layout = _is_warehouse_layout(warehouse)
    except OSError as exc:
        raise WarehouseError(f"cannot read the warehouse {warehouse}: {exc.strerror}") from None
    if not (marked or layout):
        raise WarehouseError(f"{warehouse} is not a warehouse (it has no {MARKER})")
    snapshot = current_snapshot(warehouse)
    if snapshot is None and (warehouse / CURRENT).is_dir():
        snapshot = (warehouse / CURRENT).resolve()  # copied with its links followed
    if snapshot is None or not (snapshot / "sessions").is_dir():
        if not marked:
            raise WarehouseError(f"{warehouse} is not a warehouse: {ingest_first}")
        raise WarehouseError(f"{warehouse} holds no ingest yet: {ingest_first}")
    return snapshot


def _marked(warehouse: Path) -> bool:
    """Whether `warehouse` has the marker; an error if it is another format or a newer one."""
    path = warehouse / MARKER
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not text:  # being written by an ingest that claims the folder this very moment
        return True
    try:
        body = json.loads(text)
        kind, version = body["format"], body["version"]
    except (ValueError, TypeError, KeyError):
        kind, version = None, None
    if kind != FORMAT or not isinstance(version, int):
        raise WarehouseError(f"{path} does not say this is a sessions warehouse: {text[:80]!r}")
    if version > FORMAT_VERSION:
        raise WarehouseError(
            f"{warehouse} is a warehouse of format version {version}, newer than this version "
            f"of sessions reads ({FORMAT_VERSION}): upgrade sessions"
        )
    return True


# A warehouse written before the marker holds only these names, and its links only these
# targets.
_LINKS = {
    CURRENT: None,  # .snapshots/<run>
    "sessions": f"{CURRENT}/sessions",
    "rejects": f"{CURRENT}/rejects",
    views.DATABASE: f"{CURRENT}/{views.DATABASE}",
}
_OWN = {SNAPSHOTS, STAGING, ".lock", f"{views.DATABASE}.wal", *_LINKS}


def _is_warehouse_layout(warehouse: Path) -> bool:
    """Whether every entry of `warehouse` is one a warehouse has (an empty folder passes):
    a warehouse built before the marker, or an empty folder, not someone else's folder."""
    names = set()
    for entry in warehouse.iterdir():
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
    # Before its first commit, a warehouse of ours has its links (an ingest makes them
    # first), or nothing but a lock: a lone `.snapshots` or `.staging` is someone else's.
    return CURRENT in names or names <= {".lock"} or {"sessions", "rejects"} <= names


def start_run(warehouse: Path) -> Run:
    """Prepare `warehouse` (creating it if new) and a staging folder for one ingest."""
    now = datetime.now(UTC)
    run = Run(warehouse, now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:8], now)
    try:
        warehouse.mkdir(parents=True, exist_ok=True)
        _clean_leftovers(warehouse)
        run.accepted.mkdir(parents=True)
        run.rejected.mkdir(parents=True)
        for name in ("sessions", "rejects", views.DATABASE):
            link = warehouse / name
            if not link.is_symlink():
                if name == views.DATABASE:
                    link.unlink(missing_ok=True)  # a database built before it was linked
                elif link.exists():
                    raise WarehouseError(f"{link} exists and is not this warehouse's link")
                link.symlink_to(Path(CURRENT) / name)
    except OSError as exc:
        raise WarehouseError(f"cannot prepare the warehouse {warehouse}: {exc}") from None
    return run


def abandon(run: Run) -> None:
    """Remove what a failed or refused ingest wrote; the warehouse stays as it was. A run
    stopped after its commit keeps its snapshot, which is the current one by then."""
    shutil.rmtree(run.staging, ignore_errors=True)
    if not committed(run):
        shutil.rmtree(run.snapshot, ignore_errors=True)


def committed(run: Run) -> bool:
    """Whether the run's snapshot is the current one: its commit has happened."""
    return current_snapshot(run.warehouse) == run.snapshot.resolve()


def connect(run: Run, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for the merge: UTC, and spilling into the run's staging folder.

    `memory_limit` is DuckDB's budget (`memory.parse` spells it); past it DuckDB spills.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Inside the run's staging folder: removed with the run, whatever happens to it.
    con.execute(f"SET temp_directory = {views.sql_path(run.staging / 'spill')}")
    con.execute("SET preserve_insertion_order = false")
    # Bounded memory whatever the size of the ingest: DuckDB spills past this. (The spill
    # itself is bounded by DuckDB's default max_temp_directory_size, 90% of the free disk.)
    con.execute(f"SET memory_limit = '{memory.parse(memory_limit)}'")
    # A partitioned write buffers this many rows per thread before it writes them out, and
    # that buffer cannot spill: at DuckDB's default (524,288 rows) 5M sessions ran out of
    # memory under the cap.
    con.execute("SET partitioned_write_flush_threshold = 131072")
    return con


def _content_hash_sql() -> str:
    # Stable across versions (md5 of text), unlike an engine's internal row hash.
    parts = []
    for name in (*FIELD_NAMES, "extra_fields"):
        value = f'epoch_us("{name}")' if name == "timestamp" else f'"{name}"'
        parts.append(f"coalesce(CAST({value} AS VARCHAR), chr(0))")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


# The rule the `sessions` view states for local times, spelled as it spells it: the agent's
# timezone where it is an IANA name DuckDB knows, else UTC.
_LOCAL_DATE = """CAST(timezone(
    CASE WHEN agent_timezone IN (SELECT name FROM pg_timezone_names()) THEN agent_timezone
         ELSE 'UTC' END,
    "timestamp") AS DATE)"""


def merge(run: Run, con: duckdb.DuckDBPyConnection) -> MergeResult:
    """Write the new snapshot's changed partitions from the staged accepted rows.

    Within the run the latest delivery of a session wins (later file, then later record);
    over the warehouse, a delivery replaces the stored session unless its content is equal.
    """
    stored = ", ".join(f'"{f.name}"' for f in STORED_FIELDS)
    # Files named one by one, never a glob: the warehouse's own path may hold `[` or `*`.
    accepted = sorted(run.accepted.glob("*.parquet"))
    staged = (
        f"read_parquet({views.sql_paths(accepted)}, hive_partitioning = false)"
        if accepted
        else views.empty_relation(_STAGED)
    )
    con.execute(f"""
        CREATE TEMP TABLE incoming AS
        SELECT {stored}, CAST("timestamp" AS DATE) AS "{PARTITION_COLUMN}",
            _file_seq, _element, _item
        FROM (
            SELECT *, coalesce(session_id, 'content:' || content_hash) AS session_key
            FROM (
                SELECT *, {_content_hash_sql()} AS content_hash, {_LOCAL_DATE} AS local_date
                FROM {staged}
            )
        )
    """)
    # Most runs deliver each session once; the window that picks the latest delivery is the
    # costliest step of a merge, so it runs only over the sessions delivered more than once.
    repeated = con.execute("SELECT count(*) - count(DISTINCT session_key) FROM incoming")
    if repeated.fetchall()[0][0]:
        con.execute("""
            DELETE FROM incoming WHERE rowid IN (
                SELECT rowid FROM incoming
                WHERE session_key IN (
                    SELECT session_key FROM incoming GROUP BY session_key HAVING count(*) > 1)
                QUALIFY row_number() OVER (
                    PARTITION BY session_key
                    ORDER BY _file_seq DESC, _element DESC, _item DESC NULLS LAST) > 1)
        """)
    current = _current_files(run.warehouse)
    existing = (
        f"""SELECT session_key, content_hash, {FOLDER_DATE} AS old_date
            FROM {stored_files(current)}"""
        if current
        else "SELECT NULL::VARCHAR AS session_key, NULL::VARCHAR AS content_hash, "
        "NULL::DATE AS old_date LIMIT 0"
    )
    con.execute(f"""
        CREATE TEMP TABLE compared AS
        SELECT i.session_key, i."{PARTITION_COLUMN}" AS new_date, e.old_date,
               CASE WHEN e.session_key IS NULL THEN 'new'
                    WHEN e.content_hash = i.content_hash THEN 'unchanged'
                    ELSE 'updated' END AS outcome
        FROM incoming i
        LEFT JOIN ({existing}) e ON e.session_key = i.session_key
    """)
    counts = dict(con.execute("SELECT outcome, count(*) FROM compared GROUP BY ALL").fetchall())
    # Every day the run changes, and whether it loses a row there (an updated session's old
    # version) or only gains some.
    changed_days = {
        str(day): loses
        for day, loses in con.execute("""
            SELECT d, bool_or(loses) FROM (
                SELECT new_date AS d, false AS loses FROM compared WHERE outcome <> 'unchanged'
                UNION ALL SELECT old_date, true FROM compared WHERE outcome = 'updated')
            GROUP BY d
        """).fetchall()
    }
    # A partition that loses rows is rewritten; one that only gains rows gets one more file,
    # so that the cost follows the new data, not the warehouse. A partition with too many
    # files is rewritten as one to keep reads fast.
    files_in: dict[str, list[Path]] = {}
    for path in current:
        files_in.setdefault(_partition_of(path), []).append(path)
    rewritten = {
        day
        for day, loses in changed_days.items()
        if loses or len(files_in.get(day, [])) >= MAX_FILES
    }
    kept_from = [p for d in sorted(rewritten) for p in files_in.get(d, [])]
    kept = (
        f"""SELECT {stored}, {FOLDER_DATE} AS "{PARTITION_COLUMN}"
            FROM {stored_files(kept_from)}
            WHERE session_key NOT IN (
                SELECT session_key FROM compared WHERE outcome = 'updated')"""
        if kept_from
        else None
    )
    changed = f'SELECT {stored}, "{PARTITION_COLUMN}" FROM incoming'
    if counts.get("unchanged"):
        changed += """ WHERE session_key IN (
            SELECT session_key FROM compared WHERE outcome <> 'unchanged')"""
    written = run.staging / "partitions"
    written.mkdir()
    # Each write takes only its own days' rows (see _write_partitions).
    if rewritten:
        union = f"{kept} UNION ALL {changed}" if kept else changed
        _write_partitions(con, union, rewritten, written / "rewritten", run)
    if len(rewritten) < len(changed_days):
        _write_partitions(con, changed, set(changed_days) - rewritten, written / "added", run)
    _build_snapshot(run, current, rewritten, written)
    return MergeResult(
        sessions_new=counts.get("new", 0),
        sessions_updated=counts.get("updated", 0),
        sessions_unchanged=counts.get("unchanged", 0),
        partitions_written=len(changed_days),
    )


def stored_files(files: list[Path]) -> str:
    """The warehouse's Parquet files, with the path of each. Never with DuckDB's Hive
    partitioning, which takes `key=value` from every folder of the path: a warehouse below
    `.../date=1999-01-01/` would read every session as of that date."""
    return f"read_parquet({views.sql_paths(files)}, hive_partitioning = false, filename = true)"


# The partition a stored row is in: its file's folder, `date=YYYY-MM-DD`, the last of its path.
FOLDER_DATE = f"CAST(regexp_extract(filename, '/{PARTITION_COLUMN}=([0-9-]+)/[^/]*$', 1) AS DATE)"


# What ingest stages: the session fields, lineage, and each row's place among the deliveries.
_STAGED = (
    *((f.name, f.duckdb_type) for f in SESSION_FIELDS),
    ("extra_fields", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("ingested_at", "TIMESTAMPTZ"),
    ("_file_seq", "BIGINT"),
    ("_element", "BIGINT"),
    ("_item", "BIGINT"),
)


def _write_partitions(
    con: duckdb.DuckDBPyConnection, rows: str, days: set[str], folder: Path, run: Run
) -> None:
    """`rows` (of `days` only) as one folder per day under `folder`, a few days per write."""
    folder.mkdir()
    ordered = sorted(days)
    for start in range(0, len(ordered), DAYS_PER_WRITE):
        group = set(ordered[start : start + DAYS_PER_WRITE])
        written = folder.with_name(f"{folder.name}-{start}")
        con.execute(f"""
            COPY (SELECT * FROM ({rows})
                  WHERE CAST("{PARTITION_COLUMN}" AS VARCHAR) IN ({_sql_list(group)}))
            TO {views.sql_path(written)}
            (FORMAT parquet, PARTITION_BY ("{PARTITION_COLUMN}"), COMPRESSION zstd,
             FILENAME_PATTERN 'part-{run.run_id}-{{i}}', WRITE_PARTITION_COLUMNS false)
        """)
        if written.exists():  # no folder where the days have no rows left
            for partition in written.iterdir():
                os.replace(partition, folder / partition.name)
            written.rmdir()


def _sql_list(values: set[str]) -> str:
    # Dates only (YYYY-MM-DD, from DuckDB itself): nothing to escape.
    return ", ".join(f"'{v}'" for v in sorted(values))


def _partition_of(path: Path) -> str:
    return path.parent.name.split("=", 1)[1]


def current_snapshot(warehouse: Path) -> Path | None:
    link = warehouse / CURRENT
    return link.resolve() if link.is_symlink() else None


def _current_files(warehouse: Path) -> list[Path]:
    snapshot = current_snapshot(warehouse)
    if snapshot is None:
        return []
    return snapshot_files(snapshot)[0]


def snapshot_files(snapshot: Path) -> tuple[list[Path], list[Path]]:
    """The snapshot's sessions files and rejects files, each list in name order."""
    return (
        sorted((snapshot / "sessions").glob(f"{PARTITION_COLUMN}=*/*.parquet")),
        sorted((snapshot / "rejects").glob("*.parquet")),
    )


def _build_snapshot(run: Run, current: list[Path], rewritten: set[str], written: Path) -> None:
    """The new snapshot: hard links to every file it keeps, the partitions rewritten, and the
    files added to the others."""
    sessions = run.snapshot / "sessions"
    sessions.mkdir(parents=True)
    (run.snapshot / "rejects").mkdir()
    for path in current:
        if _partition_of(path) not in rewritten:
            target = sessions / path.parent.name / path.name
            target.parent.mkdir(exist_ok=True)
            os.link(path, target)
    if (written / "rewritten").exists():
        for partition in (written / "rewritten").iterdir():
            os.replace(partition, sessions / partition.name)
    if (written / "added").exists():
        for partition in (written / "added").iterdir():
            (sessions / partition.name).mkdir(exist_ok=True)
            for path in partition.iterdir():
                os.replace(path, sessions / partition.name / path.name)
    previous = current_snapshot(run.warehouse)
    if previous is not None:
        for path in (previous / "rejects").glob("*.parquet"):
            os.link(path, run.snapshot / "rejects" / path.name)


def add_rejects(run: Run, con: duckdb.DuckDBPyConnection) -> None:
    """Put the run's quarantined rows into the new snapshot as one Parquet file."""
    rejected = sorted(run.rejected.glob("*.parquet"))
    if not rejected:
        return
    target = run.snapshot / "rejects" / f"ingest-{run.run_id}.parquet"
    con.execute(f"""
        COPY (SELECT * FROM read_parquet({views.sql_paths(rejected)}, hive_partitioning = false)
              ORDER BY _file_seq, element, item NULLS FIRST)
        TO {views.sql_path(target)} (FORMAT parquet, COMPRESSION zstd)
    """)


def commit(run: Run) -> None:
    """Make the run's snapshot the current one, in one atomic rename."""
    link = run.warehouse / f".{CURRENT}.{run.run_id}"
    link.symlink_to(Path(SNAPSHOTS) / run.run_id)
    os.replace(link, run.warehouse / CURRENT)
    # A write-ahead log left beside the database by a client that opened it for writing and
    # died belongs to the database just replaced; replayed on the new one it would do harm.
    Path(f"{run.warehouse / views.DATABASE}.wal").unlink(missing_ok=True)
    shutil.rmtree(run.staging, ignore_errors=True)


def build_database(snapshot: Path) -> None:
    """Build the snapshot's `sessions.duckdb`: views over exactly the snapshot's files."""
    target = snapshot / views.DATABASE
    building = snapshot / f".{views.DATABASE}.{uuid.uuid4().hex[:8]}"
    try:
        views.build_database(building, *snapshot_files(snapshot))
        os.replace(building, target)
    except (OSError, duckdb.Error) as exc:
        building.unlink(missing_ok=True)
        raise WarehouseError(f"cannot build {target}: {exc}") from None


def tidy(warehouse: Path) -> None:
    """Remove what killed ingests left, and rebuild the current snapshot's database if it
    reads files elsewhere: the warehouse was moved or copied since (its views name files by
    absolute path). Hold the lock."""
    _clean_leftovers(warehouse)
    snapshot = current_snapshot(warehouse)
    if snapshot is not None and not database_reads(snapshot):
        build_database(snapshot)


def rebuild(warehouse: Path) -> Path:
    """Rebuild the current snapshot's database under the lock, wherever the warehouse now is:
    the repair for a moved or copied warehouse, without an ingest. Returns the database."""
    snapshot = readable_snapshot(warehouse)
    with locked(warehouse):
        _clean_leftovers(warehouse)
        snapshot = readable_snapshot(warehouse)
        build_database(snapshot)
    return warehouse / views.DATABASE


def database_reads(snapshot: Path) -> bool:
    """Whether the snapshot's database reads the snapshot's own files, where they are now,
    and no other warehouse's (a copy's database names the original's files)."""
    try:
        con = duckdb.connect(str(snapshot / views.DATABASE), read_only=True)
    except duckdb.Error:
        return False
    try:
        rows = con.sql(
            "SELECT sql FROM duckdb_views() WHERE view_name IN ('sessions', 'rejects')"
        ).fetchall()
    except duckdb.Error:
        return False
    finally:
        con.close()
    if len(rows) != 2:
        return False
    own = str(snapshot) + "/"
    for (text,) in rows:
        # Every path the views name: the string literals that name Parquet files.
        for literal in re.findall(r"'((?:[^']|'')*)'", text):
            path = literal.replace("''", "'")
            if path.endswith(".parquet") and not path.startswith(own):
                return False
    return True


def _clean_leftovers(warehouse: Path) -> None:
    """Remove what killed or finished runs left: staging folders, and snapshots older than
    the current one and the one before it (a reader that listed its files may still read)."""
    shutil.rmtree(warehouse / STAGING, ignore_errors=True)
    snapshots = warehouse / SNAPSHOTS
    if not snapshots.exists():
        return
    current = current_snapshot(warehouse)
    names = sorted(p.name for p in snapshots.iterdir())
    keep = {current.name} if current else set()
    if current and current.name in names:
        index = names.index(current.name)
        keep.update(names[max(index - 1, 0) : index + 1])
    for name in names:
        if name not in keep:
            shutil.rmtree(snapshots / name, ignore_errors=True)
    for stray in warehouse.glob(f".{CURRENT}.*"):
        stray.unlink(missing_ok=True)
