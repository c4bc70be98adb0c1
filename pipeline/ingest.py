"""Ingest export files into the warehouse: read, parse, validate, stage, merge, commit."""

from __future__ import annotations

import glob
import zoneinfo
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from pipeline import warehouse
from pipeline.errors import InputError, PipelineError, RejectRateExceeded, WarehouseError
from pipeline.read import Source, read_export, sniff
from pipeline.report import FileReport, IngestReport
from pipeline.transform import parse
from pipeline.validate import validate
from schemas import FIELD_NAMES, key_aliases

Progress = Callable[[str, int], None]


def find_exports(paths: Sequence[str]) -> list[Path]:
    """The files named by `paths` (files, folders, globs), in the order given.

    A folder gives every file below it, and a glob every file it matches, in name order;
    hidden files are skipped. A path that names nothing is an error.
    """
    found: list[Path] = []
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
        found.extend(m for m in matches if m not in found)
    return found


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def ingest(
    paths: Sequence[str],
    warehouse_dir: Path,
    *,
    naive_timezone: str = "UTC",
    max_reject_rate: float | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest the exports at `paths` into `warehouse_dir` and say what was done.

    Either the whole ingest is committed, or nothing is: an unreadable file, a failure, or a
    reject rate above `max_reject_rate` leaves the warehouse as it was.
    """
    _check_timezone(naive_timezone)
    sources = [sniff(path) for path in find_exports(paths)]
    with warehouse.locked(warehouse_dir):
        run = warehouse.start_run(warehouse_dir)
        report = IngestReport(str(warehouse_dir), run.run_id)
        try:
            con = warehouse.connect(run)
            for seq, source in enumerate(sources):
                report.files.append(_ingest_file(run, con, seq, source, naive_timezone, progress))
            merged = warehouse.merge(run, con)
            warehouse.add_rejects(run, con)
            con.close()
            report.sessions_new = merged.sessions_new
            report.sessions_updated = merged.sessions_updated
            report.sessions_unchanged = merged.sessions_unchanged
            stored = merged.sessions_new + merged.sessions_updated + merged.sessions_unchanged
            report.rows_superseded = report.rows_accepted - stored
            report.partitions_written = merged.partitions_written
            if max_reject_rate is not None and report.reject_rate > max_reject_rate:
                raise RejectRateExceeded(
                    f"{report.reject_rate:.1%} of the rows were rejected, more than "
                    f"--max-reject-rate {max_reject_rate:.1%} allows; nothing was committed "
                    "(see the report for the reasons)"
                )
            warehouse.commit(run)
            report.committed = True
            warehouse.rebuild_database(warehouse_dir)
        except PipelineError as exc:
            warehouse.abandon(run)
            exc.report = report  # type: ignore[attr-defined]
            raise
        except duckdb.IOException as exc:
            warehouse.abandon(run)
            raise WarehouseError(f"cannot write the warehouse {warehouse_dir}: {exc}") from None
        except OSError as exc:
            warehouse.abandon(run)
            raise WarehouseError(
                f"cannot write the warehouse: {exc.strerror}: {exc.filename or warehouse_dir}"
            ) from None
        except BaseException:
            warehouse.abandon(run)
            raise
    return report


def _check_timezone(name: str) -> None:
    if name not in _timezones():
        raise InputError(name, "is not an IANA timezone name", "e.g. UTC or America/Chicago")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _ingest_file(
    run: warehouse.Run,
    con: duckdb.DuckDBPyConnection,
    seq: int,
    source: Source,
    naive_timezone: str,
    progress: Progress | None,
) -> FileReport:
    stats = FileReport(source.name, source.format.value)
    for batch_no, raw in enumerate(read_export(source, con, stats.warnings.append)):
        checked = validate(parse(raw, naive_timezone))
        ok = checked["_reasons"].list.len() == 0
        accepted, rejected = checked.filter(ok), checked.filter(~ok)
        name = f"{seq:06d}-{batch_no:06d}.parquet"
        if len(accepted):
            _stored(accepted, source, seq, run).write_parquet(run.accepted / name)
        if len(rejected):
            _quarantined(rejected, source, seq, run).write_parquet(run.rejected / name)
            stats.rejected_by_reason.update(_reason_counts(rejected))
        stats.rows_read += len(raw)
        stats.rows_accepted += len(accepted)
        stats.rows_rejected += len(rejected)
        stats.unknown_fields.update(_unknown_keys(raw))
        _warn_timezones(accepted, stats)
        if progress is not None:
            progress(source.name, len(raw))
    if stats.rows_read != stats.rows_accepted + stats.rows_rejected:
        raise AssertionError(f"{source.name}: rows do not add up: {stats.to_dict()}")
    return stats


def _stored(accepted: pl.DataFrame, source: Source, seq: int, run: warehouse.Run) -> pl.DataFrame:
    return accepted.select(
        *FIELD_NAMES,
        "extra_fields",
        pl.lit(source.name).alias("source_file"),
        pl.lit(run.started).dt.convert_time_zone("UTC").alias("ingested_at"),
        pl.lit(seq, pl.Int64).alias("_file_seq"),
        "_element",
        "_item",
    )


def _quarantined(
    rejected: pl.DataFrame, source: Source, seq: int, run: warehouse.Run
) -> pl.DataFrame:
    element = pl.col("_element") + 1
    place = (
        pl.when(pl.col("_line").is_not_null())
        .then(pl.format("line {}", pl.col("_line")))
        .otherwise(pl.format("element {}", element))
    )
    item = pl.format(", items[{}]", pl.col("_item"))
    return rejected.select(
        pl.lit(run.started).dt.convert_time_zone("UTC").alias("ingested_at"),
        pl.lit(source.name).alias("source_file"),
        pl.col("_line").alias("line"),
        element.alias("element"),
        pl.col("_item").alias("item"),
        pl.concat_str(place, item, ignore_nulls=True).alias("position"),
        pl.col("_record").alias("record"),
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
    keys = raw.select(pl.col("_keys").explode().drop_nulls().unique())["_keys"]
    return set(keys.filter(~keys.is_in(list(key_aliases()))).to_list())


def _warn_timezones(accepted: pl.DataFrame, stats: FileReport) -> None:
    timezone = pl.col("agent_timezone")
    unknown = (
        accepted.filter(timezone.is_not_null() & ~timezone.is_in(sorted(_timezones())))
        .group_by(timezone)
        .len()
    )
    for name, count in unknown.sort("agent_timezone").iter_rows():
        stats.warnings.append(
            f"{count} row(s) with agent_timezone {name!r}, not an IANA timezone: "
            "kept, and read as UTC for local times"
        )
