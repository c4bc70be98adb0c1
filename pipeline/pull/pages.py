"""The paging loop: page 0, 1, … of the window, each body written to the raw file as it
came, until the last page (`page + 1 >= total_pages`) or an empty one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ApiError, InputError, PipelineError
from pipeline.pull.client import Api, Failure, Query
from pipeline.pull.display import Fetching
from pipeline.pull.raw import RawFile


@dataclass
class Fetched:
    pages: int = 0
    sessions: int = 0  # items received, repeats across pages included
    total_pages: int | None = None


def fetch(api: Api, query: Query, raw: RawFile, shown: Fetching) -> Fetched:
    """Every page of `query` into `raw`. A failure says how far the pull got."""
    done = Fetched()
    while True:
        try:
            body = api.page(done.pages, query)
            items, total = _read(body, done.pages)
        except Failure as exc:
            raise _failed(exc, done) from None
        raw.write(body)
        done.pages += 1
        done.sessions += items
        done.total_pages = total
        shown.page(done.pages, total, done.sessions)
        # Where the API gives no total, a short page is the last.
        last = done.pages >= total if total is not None else items < query.limit
        if items == 0 or last:
            return done


def _read(body: bytes, number: int) -> tuple[int, int | None]:
    """How many items page `number` holds, and the total of pages it states. The items
    themselves are the ingest's to read: one that is odd is quarantined, not this page."""
    try:
        page: Any = json.loads(body)
    except ValueError as exc:
        raise Failure("api", f"page {number} is not JSON ({exc})") from None
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise Failure("api", f"page {number} is not a list of sessions (no 'items' array)")
    total = page.get("total_pages")
    if total is not None and (type(total) is not int or total < 0):
        raise Failure("api", f"page {number} states total_pages {total!r}")
    return len(page["items"]), total


def _failed(exc: Failure, done: Fetched) -> PipelineError:
    of = f" of {done.total_pages}" if done.total_pages is not None else ""
    far = (
        f"stopped after {done.pages}{of} page(s), {done.sessions:,} session(s); "
        "nothing was committed"
    )
    if exc.kind == "api":
        return ApiError(f"{exc} ({far})")
    if exc.kind == "key":
        name, message = str(exc).split(": ", 1)
        return InputError(name, message + f" ({far})")
    return InputError("sessions pull", f"{exc} ({far})")
