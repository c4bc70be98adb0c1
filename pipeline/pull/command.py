"""`sessions pull`: the window resolved, every page fetched into one raw file, put in the raw
layer whole, then ingested by the usual ingest (one commit, the pull's window in its
manifest entry)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import ingest
from pipeline.errors import InputError, WarehouseError
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

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.ingest.to_dict(),
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
    if given is not None:
        return Path(given)
    if wh.local is None:
        raise InputError("--raw", "is needed with an S3 warehouse", "a local folder for the pages")
    return wh.local / raw.FOLDER


def _inside(folder: Path, wh: location.Warehouse) -> bool:
    return wh.local is not None and folder.resolve().is_relative_to(wh.local.resolve())


def _check_place(wh: location.Warehouse) -> None:
    """Refuse a folder the ingest would refuse before fetching anything, rather than after."""
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
    query = client.Query(start, end, request.page_size, request.agent)
    api = client.Api(server, key, request.retry_for)
    shown = display.for_terminal(not watched)
    target = folder / raw.file_name(started)
    try:
        with raw.RawFile() as pages:
            fetched = fetch(api, query, pages, shown)
            shown.close()
            if _inside(folder, wh):
                # A new warehouse is marked as one before its raw folder goes in it.
                location.claim(wh, migrate.is_snapshot_layout(wh))
            kept = pages.keep(target)
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
    record = state.record(server, request.agent, span, fetched.pages, fetched.sessions)
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
    if done.ingest.skipped and not done.ingest.files:
        # The very pages of a raw file ingested before: that file is their record.
        kept.unlink()
        done.same_as_before = True
    else:
        done.raw_files.append(str(kept))
    return done
