"""Ingest export files into the warehouse: read, parse, validate, stage, merge, commit."""

from __future__ import annotations

import glob
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline import manifest, memory, pii, stops
from pipeline.errors import (
    InputError,
    PipelineError,
    RejectRateExceeded,
    WarehouseError,
    unreadable,
)
from pipeline.pii import PiiMode
from pipeline.progress import QUIET, Display
from pipeline.read import Source, fast, readers, sniff
from pipeline.read.ahead import read_ahead
from pipeline.report import FileReport, IngestReport, SkippedFile
from pipeline.store import database, location, merge, runs, writer
from pipeline.store.location import Warehouse
from pipeline.store.runs import Run
from pipeline.transform import parse
from pipeline.validate import validate
from pipeline.views import timezones
from schemas import FIELD_NAMES, key_aliases

# Rows a staged row group holds: small enough that the few rows of other days a sorted
# batch has at its ends make few row groups that every day's write reads.
STAGED_ROW_GROUP = 8192


def find_exports(
    paths: Sequence[str],
    warehouse: Path | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """The files named by `paths` (files, folders, globs), in the order given.

    A folder gives every file below it, and a glob every file it matches, in name order;
    hidden files are skipped, and so is every file of `warehouse` (an ingest of a folder that
    holds the warehouse must not read the warehouse back into itself), with a note. A path
    that names nothing is an error.
    """
    inside = _inside(warehouse) if warehouse is not None else lambda path: False
    found: list[Path] = []
    skipped = 0
    for given in paths:
        path = Path(given)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        elif path.exists():
            matches = [path]
        elif glob.has_magic(given):
            matches = sorted(Path(p) for p in glob.glob(given, recursive=True) if Path(p).is_file())
        else:
            raise InputError(path, "no such file or folder")
        if not matches:
            raise InputError(path, "holds no export files")
        exports = [m for m in matches if not inside(m)]
        skipped += len(matches) - len(exports)
        if not exports:
            raise InputError(path, f"holds no export files, only the warehouse {warehouse}")
        found.extend(m for m in exports if m not in found)
    if skipped:
        notify(f"note: skipped {skipped} file(s) of the warehouse {warehouse} itself")
    return found


def _inside(warehouse: Path) -> Callable[[Path], bool]:
    """Whether a file is the warehouse's, by where it really is (links resolved): a link
    beside the exports may lead into the warehouse."""
    root = warehouse.resolve()
    return lambda path: path.resolve().is_relative_to(root)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


@dataclass(frozen=True)
class Options:
    """How an ingest treats its input; every field has the CLI's default."""

    naive_timezone: str = "UTC"
    max_reject_rate: float | None = None
    force: bool = False
    pii: PiiMode = PiiMode.PSEUDONYMISE
    memory_limit: str = memory.MEMORY_LIMIT  # DuckDB's budget, e.g. 512MB or 1GB


def ingest(
    paths: Sequence[str],
    warehouse_dir: Path | str | Warehouse,
    options: Options = Options(),
    *,
    progress: Display = QUIET,
    notify: Callable[[str], None] = lambda message: None,
    on_commit: Callable[[], None] | None = None,
    record: Mapping[str, Any] | None = None,
    own_files: bool = False,
) -> IngestReport:
    """Ingest the exports at `paths` into the warehouse and say what was done.

    Either the whole ingest is committed, or nothing is: an unreadable file, a failure, or a
    reject rate above `max_reject_rate` leaves the warehouse as it was. A file whose content
    was ingested before is skipped unless `force`. `on_commit` is called once the ingest is
    committed (the CLI holds stop requests from then on: the work is done). `record` is kept
    in the manifest's entry of this ingest (`sessions pull` keeps its window there).
    `own_files`: the paths may lie inside the warehouse (`pull`'s raw layer, `<warehouse>/raw/`).
    """
    wh = location.of(warehouse_dir)
    _check_timezone(options.naive_timezone)
    _check_memory_limit(options.memory_limit)
    found = find_exports(paths, None if own_files else wh.local, notify)
    sources = [sniff(path) for path in found]
    with writer.writing(wh) as target:
        previous = target.version.manifest if target.version is not None else manifest.Manifest()
        key = _check_pii(previous, options.pii, notify)
        report = IngestReport(str(wh), run_id="", pii=options.pii.value)
        seen, sizes = previous.ingested(), previous.sizes()
        todo: list[tuple[Source, str | None, Stamp]] = []
        for source in sources:
            # Before any pass over it: the file must be the same once it is read and hashed.
            stamp = _stamp(source)
            if options.force or (sizes is not None and stamp[0] not in sizes):
                # Not a repeat, whatever its hash: hashed while it is read (`_run`).
                todo.append((source, None, stamp))
                continue
            digest = manifest.file_hash(source.path)
            if digest in seen and not options.force:
                report.skipped.append(SkippedFile(source.name, seen[digest]["run_id"]))
            else:
                todo.append((source, digest, stamp))
        if not todo:
            database.refresh(wh, target.version)
            return report
        run = runs.start(wh)
        report.run_id = run.run_id
        try:
            merged, rejects = _run(run, todo, options, key, report, target, progress)
            previous.pii_mode = options.pii.value
            previous.key_fingerprint = pii.fingerprint(key) if key is not None else None
            previous.ingests.append({**report.manifest_entry(datetime.now(UTC)), **(record or {})})
            progress.phase("committing")
            with stops.held():
                writer.commit(target, run, merged, rejects, previous)
                report.committed = True
            database.refresh(wh)
            runs.abandon(run, committed=True)
        except BaseException as exc:
            report.committed = report.committed or writer.committed(wh, run)
            runs.abandon(run, committed=report.committed)
            if report.committed or isinstance(exc, PipelineError):
                # The report goes with the error; after the commit (a stop that came as the
                # ingest finished) it says the ingest is complete.
                exc.report = report  # type: ignore[attr-defined]
                raise
            if isinstance(exc, duckdb.OutOfMemoryException):
                # Not the input's fault, whatever DuckDB was doing with it: the budget.
                detail = str(exc)
                raise WarehouseError(memory.out_of_memory(options.memory_limit, detail)) from None
            if isinstance(exc, duckdb.Error | pl.exceptions.ComputeError):
                message = " ".join(str(exc).split())
                raise WarehouseError(f"cannot update {wh}: {message}") from None
            if isinstance(exc, OSError):
                raise WarehouseError(
                    f"cannot write the warehouse: {exc.strerror or exc}: {exc.filename or wh}"
                ) from None
            raise
        if on_commit is not None:
            on_commit()
    return report


# A file's size and modification time (ns), as `os.stat` gives them.
Stamp = tuple[int, int]


def _stamp(source: Source) -> Stamp:
    try:
        status = source.path.stat()
    except OSError as exc:
        raise unreadable(source.path, exc) from None
    return status.st_size, status.st_mtime_ns


def _run(
    run: Run,
    todo: list[tuple[Source, str | None, Stamp]],
    options: Options,
    key: bytes | None,
    report: IngestReport,
    target: writer.Target,
    progress: Display,
) -> tuple[merge.MergeResult, Path | None]:
    """Everything of one ingest up to, not including, its commit: the new files and counts."""
    con = merge.connect(run, options.memory_limit)
    try:
        pseudonyms = pii.Pseudonyms(con, key) if key is not None else None
        for seq, (source, digest, stamp) in enumerate(todo):
            # A file not hashed yet is hashed beside its read; a plain one in the pass that
            # counts its lines for the fast readers (one read of the file, not two).
            counter = None
            hashing: manifest.Hashing | fast.LineCounter | None = None
            if digest is None:
                if fast.plain(source):
                    hashing = counter = readers.line_counter(source, hashed=True)
                else:
                    hashing = manifest.Hashing(source.path)
                hashing.start()
            stats = _ingest_file(run, con, seq, source, options, pseudonyms, progress, counter)
            stats.sha256 = hashing.sha256() if hashing is not None else str(digest)
            if _stamp(source) != stamp:
                # Still being written (a download, an export job), or replaced: its rows and its
                # hash may be of two versions, and the manifest would name the file wrongly.
                raise InputError(
                    source.path,
                    "changed while it was read (its size or modification time); nothing was "
                    "committed",
                    "ingest it again once it is complete",
                )
            stats.bytes = stamp[0]
            report.files.append(stats)
        progress.phase("merging")
        merged = merge.merge(run, con, target.version)
        rejects = merge.write_rejects(run, con)
    finally:
        con.close()
    report.sessions_new = merged.sessions_new
    report.sessions_updated = merged.sessions_updated
    report.sessions_unchanged = merged.sessions_unchanged
    stored = merged.sessions_new + merged.sessions_updated + merged.sessions_unchanged
    report.rows_superseded = report.rows_accepted - stored
    report.partitions_written = merged.partitions_written
    rate = options.max_reject_rate
    if rate is not None and report.reject_rate > rate:
        raise RejectRateExceeded(
            f"{report.reject_rate:.1%} of the rows were rejected, more than "
            f"--max-reject-rate {rate:.1%} allows; nothing was committed "
            "(see the report for the reasons)"
        )
    return merged, rejects


def _check_pii(
    previous: manifest.Manifest, mode: PiiMode, notify: Callable[[str], None]
) -> bytes | None:
    """The key to pseudonymise with; refuses to mix modes or keys in one warehouse."""
    if previous.pii_mode not in (None, mode.value):
        raise WarehouseError(
            f"this warehouse stores caller identities as '{previous.pii_mode}'; --pii "
            f"{mode.value} would mix two kinds in one dataset (use --pii {previous.pii_mode})"
        )
    if mode is not PiiMode.PSEUDONYMISE:
        return None
    key = pii.load_key(notify)
    if previous.key_fingerprint not in (None, pii.fingerprint(key)):
        raise WarehouseError(
            f"the pseudonymisation key ({pii.key_source()}) is not "
            "the one this warehouse was built with: the same caller would get two pseudonyms"
        )
    return key


def _check_timezone(name: str) -> None:
    if name not in _timezones() or not _a_zone(name):
        raise InputError(name, "is not an IANA timezone name", "e.g. UTC or America/Chicago")


def _a_zone(name: str) -> bool:
    """Whether `name`, of the system's list, is a zone to read an export's times in: the list
    also holds `localtime` (a link to the machine's own zone, which DuckDB, which places naive
    times, does not know) and `Factory` (a placeholder); polars knows neither."""
    try:
        pl.Series([datetime(2000, 1, 1)]).dt.replace_time_zone(name)
    except pl.exceptions.PolarsError:
        return False
    return True


def _check_memory_limit(value: str) -> None:
    try:
        memory.parse(value)
    except ValueError as exc:
        raise InputError(
            f"--memory-limit {value}", str(exc), f"e.g. 512MB or 1GB; also ${memory.ENV}"
        ) from None


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _ingest_file(
    run: Run,
    con: duckdb.DuckDBPyConnection,
    seq: int,
    source: Source,
    options: Options,
    pseudonyms: pii.Pseudonyms | None,
    progress: Display,
    counter: fast.LineCounter | None = None,
) -> FileReport:
    """Stage one file's rows: the fast reader's if it can read the file, else the exact one's
    (from the start again: what the fast reader staged of it is removed). `counter`: the
    file's `readers.line_counter`, started, if there is one."""
    note = ""
    for attempt in readers.attempts(source):
        try:
            stats = _stage_file(
                run, con, seq, source, options, pseudonyms, progress, attempt, counter
            )
        except fast.Fallback as exc:
            note = str(exc)
            for folder in (run.accepted, run.rejected):
                for staged in folder.glob(f"{seq:06d}-*.parquet"):
                    staged.unlink()
            continue
        stats.reader = "exact" if attempt == readers.EXACT else "fast"
        stats.read_note = note if attempt == readers.EXACT else ""
        return stats
    raise AssertionError("the exact reader does not fall back")


def _stage_file(
    run: Run,
    con: duckdb.DuckDBPyConnection,
    seq: int,
    source: Source,
    options: Options,
    pseudonyms: pii.Pseudonyms | None,
    progress: Display,
    attempt: str,
    counter: fast.LineCounter | None,
) -> FileReport:
    progress.file(source.name)
    size = _stamp(source)[0]  # (a file gone by now is the input's fault, not the warehouse's)
    stats = FileReport(source.name, source.format.value, encoding=source.encoding)
    # The reader runs in its own thread with its own connection (one DuckDB connection serves
    # one thread at a time) and its own list of warnings, so that their order is the file's.
    read_warnings: list[str] = []
    zones: Counter[str] = Counter()  # accepted rows by agent_timezone
    if attempt == readers.EXACT:
        reader = con.cursor()
    else:
        reader = readers.fast_connection(run.staging / "spill-read", options.memory_limit)
    frames = readers.batches(source, attempt, reader, read_warnings.append, counter)
    batches = read_ahead(frames, reader.interrupt)
    done = readers.fraction_read(source, attempt, reader)
    try:
        for batch_no, (kind, raw) in enumerate(batches):
            checked = validate(raw if kind == "typed" else parse(raw, options.naive_timezone))
            ok = checked["_reasons"].list.len() == 0
            accepted, rejected = checked.filter(ok), checked.filter(~ok)
            if kind == "typed" and len(rejected):
                # The fast reader hands on as typed only rows the schema should take; one it
                # rejects has no record to quarantine with: the exact reader reads the file.
                raise fast.Fallback(
                    f"the schema rejected a row read fast: {_reason_counts(rejected)}"
                )
            accepted, rejected = _protect(accepted, rejected, options.pii, pseudonyms)
            name = f"{seq:06d}-{batch_no:06d}.parquet"
            if len(accepted):
                # Staging is read once, by the merge: fast to write beats small.
                staged = _stored(accepted, source, seq, run)
                if not staged["timestamp"].is_sorted():
                    # The merge reads each day's rows by the row groups' timestamp ranges: a
                    # few re-deliveries of older days in an unsorted batch widened every range
                    # to most days, and the merge sorted all rows by day (1M sessions with 1%
                    # delivered twice: 20 CPU s). A row's place is in `_element`, not here.
                    staged = staged.sort("timestamp")
                staged.write_parquet(
                    run.accepted / name, compression="lz4", row_group_size=STAGED_ROW_GROUP
                )
            if len(rejected):
                _quarantined(rejected, source, seq, run).write_parquet(run.rejected / name)
                stats.rejected_by_reason.update(_reason_counts(rejected))
            stats.rows_read += len(raw)
            stats.rows_accepted += len(accepted)
            stats.rows_rejected += len(rejected)
            stats.unknown_fields.update(_unknown_keys(raw))
            zones.update(_timezone_counts(accepted))
            progress.advance(round(size * done(raw)), stats.rows_read)
    finally:
        batches.close()
        reader.close()
    stats.warnings[:0] = read_warnings
    stats.warnings += _timezone_warnings(zones)
    if stats.rows_read != stats.rows_accepted + stats.rows_rejected:
        raise AssertionError(f"{source.name}: rows do not add up: {stats.to_dict()}")
    return stats


def _protect(
    accepted: pl.DataFrame,
    rejected: pl.DataFrame,
    mode: PiiMode,
    pseudonyms: pii.Pseudonyms | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Identities as `mode` says: in the stored sessions, the caller (`source`), and the person
    called (`target`) on a session not known to be inbound, pseudonymised or dropped; and
    anything that looks like one redacted from the text that may hold them anywhere: unknown
    fields, and the records and reasons of rejected rows."""
    if mode is PiiMode.KEEP:
        return accepted, rejected
    # On an inbound session `target` is the agent's own number; on an outbound one it is the
    # person called. Where the export does not say (older exports), it may be a person.
    called = pl.col("is_outbound").fill_null(True)
    if mode is PiiMode.DROP:
        dropped = pl.lit(None, pl.String)
        accepted = accepted.with_columns(
            dropped.alias("source"),
            pl.when(called).then(dropped).otherwise(pl.col("target")).alias("target"),
        )
    elif len(accepted):
        assert pseudonyms is not None
        accepted = accepted.with_columns(pseudonyms(accepted["source"]))
        if accepted.select(called.any()).item():
            targets = pseudonyms(accepted["target"])
            accepted = accepted.with_columns(
                pl.when(called).then(targets).otherwise(pl.col("target")).alias("target")
            )
    # Most batches have no unknown field: they skip the regular expressions.
    if accepted["extra_fields"].null_count() < len(accepted):
        accepted = accepted.with_columns(pii.redact_column(accepted["extra_fields"]))
    if len(rejected):
        reason = pl.element().struct
        rejected = rejected.with_columns(
            pii.redact_column(rejected["_record"]),
            # The value a rule refused may be an identity (`duration: "+14155550124"`), and so
            # may the names of keys given twice.
            pl.col("_reasons").list.eval(
                pl.struct(
                    pii.redact(reason.field("field")).alias("field"),
                    reason.field("rule"),
                    pii.redact(reason.field("value")).alias("value"),
                )
            ),
        )
    return accepted, rejected


def _stored(accepted: pl.DataFrame, source: Source, seq: int, run: Run) -> pl.DataFrame:
    return accepted.select(
        *FIELD_NAMES,
        "extra_fields",
        pl.lit(source.name).alias("source_file"),
        pl.lit(run.started).dt.convert_time_zone("UTC").alias("ingested_at"),
        pl.lit(seq, pl.Int64).alias("_file_seq"),
        "_element",
        "_item",
    )


def _quarantined(rejected: pl.DataFrame, source: Source, seq: int, run: Run) -> pl.DataFrame:
    element = pl.col("_element") + 1
    place = (
        pl.when(pl.col("_line").is_not_null())
        .then(pl.format("line {}", pl.col("_line")))
        .otherwise(pl.format("element {}", element))
    )
    item = pl.format(", items[{}]", pl.col("_item"))
    # One chunk per column: polars 1.x panicked ("i < self.len()") evaluating a when/then
    # over columns chunked apart (the redacted record beside the others).
    return rejected.rechunk().select(
        pl.lit(run.started).dt.convert_time_zone("UTC").alias("ingested_at"),
        pl.lit(source.name).alias("source_file"),
        pl.col("_line").alias("line"),
        element.alias("element"),
        pl.col("_item").alias("item"),
        pl.concat_str(place, item, ignore_nulls=True).alias("position"),
        pl.col("_record").str.strip_chars_end("\r\n").alias("record"),
        pl.col("_reasons").alias("reasons"),
        pl.col("_reasons")
        .list.eval(
            pl.concat_str(
                pl.element().struct.field("field").fill_null("record"),
                pl.lit(": "),
                pl.element().struct.field("rule"),
                pl.format(" ({})", pl.element().struct.field("value").str.slice(0, 80)),
                ignore_nulls=True,
            )
        )
        .list.join("; ")
        .alias("reason"),
        pl.lit(seq, pl.Int64).alias("_file_seq"),
    )


def _reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    reasons = rejected.select(pl.col("_reasons").explode()).unnest("_reasons")
    labels = pl.concat_str(pl.col("field").fill_null("record"), pl.lit(": "), pl.col("rule")).alias(
        "reason"
    )
    counted = reasons.group_by(labels).len()
    return dict(counted.iter_rows())


def _unknown_keys(raw: pl.DataFrame) -> set[str]:
    # Only a record with a key the schema does not know has `extra_fields`: the keys of those
    # few are read, not the keys of every record (and a batch with none reads nothing).
    if raw["extra_fields"].null_count() == len(raw):
        return set()
    keys = raw.filter(pl.col("extra_fields").is_not_null())["_keys"].explode().drop_nulls()
    return set(keys.filter(~keys.is_in(list(key_aliases()))).unique().to_list())


def _timezone_counts(accepted: pl.DataFrame) -> Counter[str]:
    # A batch has a handful of timezones: counted by value, not looked at row by row.
    counted = accepted.group_by("agent_timezone").len().drop_nulls("agent_timezone")
    return Counter(dict(counted.iter_rows()))


def _timezone_warnings(zones: Counter[str]) -> list[str]:
    """One warning per timezone of the file whose local times the views do not compute (each
    looked up once): not an IANA name, or one that only some engines know (`EST`,
    `America/Coyhaique`; see `pipeline.views.timezones`), read as UTC as the views read it."""
    known = frozenset(timezones.names())
    return [
        f"{count} row(s) with agent_timezone {name!r}, "
        + (
            "a timezone not both DuckDB and Spark know"
            if name in _timezones()
            else "not an IANA timezone"
        )
        + ": kept, and read as UTC for local times"
        for name, count in sorted(zones.items())
        if name not in known
    ]
