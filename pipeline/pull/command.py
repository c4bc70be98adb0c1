"""`sessions pull`: the window resolved, every page fetched into one raw file, put in the raw
layer whole, then ingested by the usual ingest (one commit, the pull's window in its
manifest entry)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import ingest
from pipeline.errors import InputError, PipelineError, WarehouseError
from pipeline.progress import Display
from pipeline.pull import client, display, raw, state, window
from pipeline.pull.pages import fetch
from pipeline.report import IngestReport
from pipeline.store import location, migrate


@dataclass(frozen=True)
class Request:
    """What the command line asks for."""

    since: str
    until: str | None
    agent: str | None
    warehouse: str
    raw: str | None
    server_url: str
    page_size: int
    overlap: str
    retry_for: float
    max_time: float = 4 * 3600.0
    max_pages: int = 100_000


@dataclass
class PullReport:
    """The ingest's report, and what the pull fetched."""

    ingest: IngestReport
    server_url: str
    agent: str | None
    window: window.Window
    pages: int = 0
    sessions: int = 0
    retries: int = 0
    raw_files: list[str] = field(default_factory=list)
    same_as_before: bool = False  # the pages equal a raw file ingested before
    warnings: list[str] = field(default_factory=list)  # the pull's own

    def to_dict(self) -> dict[str, Any]:
        ingested = self.ingest.to_dict()
        return {
            **ingested,
            "warnings": [*self.warnings, *ingested["warnings"]],
            "pages_fetched": self.pages,
            "retries": self.retries,
            "pull": {
                "server_url": self.server_url,
                "agent": self.agent,
                **self.window.to_dict(),
                "sessions_received": self.sessions,
                "raw_files": self.raw_files,
            },
        }

    def to_text(self) -> str:
        since, until = self.window.api()
        retried = f", {self.retries} retried" if self.retries else ""
        head = (
            f"Pulled {self.pages} page(s){retried}, {self.sessions:,} session(s) from "
            f"{self.server_url} ({since} to {until}"
            + (f", agent {self.agent}" if self.agent else "")
            + ")"
        )
        if self.same_as_before:
            runs = ", ".join(sorted({f.ingested_by for f in self.ingest.skipped}))
            return (
                f"{head}: the same pages as pull {runs} ingested; "
                f"{self.ingest.warehouse} is unchanged"
            )
        return f"{head}, kept in {', '.join(self.raw_files)}\n{self.ingest.to_text()}"


def raw_folder(wh: location.Warehouse, given: str | None) -> Path:
    if given is None:
        if wh.local is None:
            raise InputError(
                "--raw", "is needed with an S3 warehouse", "a local folder for the pages"
            )
        return wh.local / raw.FOLDER
    if not given.strip():
        raise InputError("--raw", "is empty", "give a folder, or leave --raw out")
    folder = Path(given)
    if _inside(folder, wh) and not _inside(folder, wh, raw.FOLDER):
        # The warehouse's own folders are its to delete (vacuum, a run's staging cleanup).
        raise InputError(
            f"--raw {given}",
            f"is inside the warehouse {wh} but not in its {raw.FOLDER}/ folder",
            f"leave --raw out for {wh.local / raw.FOLDER if wh.local else raw.FOLDER}, or "
            "give a folder outside the warehouse",
        )
    return folder


def _inside(folder: Path, wh: location.Warehouse, under: str = "") -> bool:
    return wh.local is not None and folder.resolve().is_relative_to((wh.local / under).resolve())


def _check_place(wh: location.Warehouse) -> None:
    """Refuse a folder the ingest would refuse before fetching anything, rather than after."""
    if wh.local is not None and wh.local.exists() and not wh.local.is_dir():
        raise WarehouseError(f"{wh} is not a folder: give --warehouse a folder")
    if wh.local is None or migrate.is_snapshot_layout(wh) or location.is_empty(wh):
        return
    if location.marker_version(wh) is None:
        raise WarehouseError(
            f"{wh} is not empty and is not a warehouse (it has no {location.MARKER}): "
            "give --warehouse a new or empty folder; nothing in it was touched"
        )


def pull(
    request: Request,
    options: ingest.Options,
    *,
    watched: bool,
    progress: Callable[[list[tuple[str, int]]], AbstractContextManager[Display]],
    notify: Callable[[str], None],
    on_commit: Callable[[], None],
) -> PullReport:
    """Pull the window's sessions into the warehouse. Nothing is written anywhere before every
    page is in; a failure on the way commits nothing and says how far it got."""
    started = datetime.now(UTC)
    key = client.api_key()
    server = client.server_url(request.server_url)
    request = replace(request, agent=client.agent_id(request.agent))
    wh = location.of(request.warehouse)
    folder = raw_folder(wh, request.raw)
    back = window.overlap(request.overlap)
    _check_place(wh)
    last = (
        state.last_pull(request.warehouse, server, request.agent)
        if request.since.strip().lower() == window.LAST
        else None
    )
    span = window.resolve(request.since, request.until, back, started, last)
    start, end = span.api()
    if span.capped is not None:
        notify(
            f"note: --until {window.moment('--until', request.until or '').isoformat()} is "
            f"after the run's start: pulling up to {end}, the run's start"
        )
    query = client.Query(start, end, request.page_size, request.agent)
    api = client.Api(server, key, request.retry_for, request.max_time)
    shown = display.for_terminal(not watched)
    target = folder / raw.file_name(started)
    label = raw.label(f"{server}\n{request.agent or ''}", start, end)
    try:
        with raw.RawFile(label) as pages:
            fetched = fetch(api, query, pages, shown, request.max_pages)
            shown.close()
            if _inside(folder, wh):
                # A new warehouse is marked as one before its raw folder goes in it.
                location.claim(wh, migrate.is_snapshot_layout(wh))
            kept, new = pages.keep(target, folder)
    except OSError as exc:
        where = exc.filename or target
        raise WarehouseError(
            f"cannot keep the pages: {exc.strerror or exc}: {where}; nothing was committed"
        ) from None
    finally:
        shown.close()
        api.close()
    done = PullReport(
        IngestReport(str(wh), ""), server, request.agent, span, fetched.pages, fetched.sessions
    )
    done.retries = api.attempts - fetched.pages
    if fetched.total_count is not None and fetched.total_count != fetched.sessions:
        done.warnings.append(
            f"the API said the window holds {fetched.total_count:,} session(s), but "
            f"{fetched.sessions:,} were received"
        )
        notify(f"warning: {done.warnings[-1]}")
    record = state.record(server, request.agent, span, fetched.pages, fetched.sessions)
    try:
        with progress([(str(kept), kept.stat().st_size)]) as shown_ingest:
            done.ingest = ingest.ingest(
                [str(kept)],
                wh,
                options,
                progress=shown_ingest,
                notify=notify,
                on_commit=on_commit,
                record=record,
                own_files=True,
            )
    except PipelineError as exc:
        # The pages stay in the raw layer, as received: the same pull again reuses them.
        exc.args = (f"{exc}; the pages are kept in {kept}",)
        raise
    except BaseException as exc:
        # Stopped (or worse) before the commit: the raw layer as it was too, as the
        # CLI's message says of the warehouse.
        report = getattr(exc, "report", None)
        if new and not (report is not None and report.committed):
            _remove(kept, folder)
        raise
    if done.ingest.skipped and not done.ingest.files:
        # The very pages of a raw file ingested before: that file is their record.
        if new:
            _remove(kept, folder)
        done.same_as_before = True
    else:
        done.raw_files.append(str(kept))
    return done


def _remove(kept: Path, folder: Path) -> None:
    kept.unlink(missing_ok=True)
    if kept.parent != folder and not any(kept.parent.iterdir()):
        kept.parent.rmdir()
