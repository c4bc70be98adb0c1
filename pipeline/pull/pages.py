"""The paging loop: page 0, 1, … of the window, each body written to the raw file as it
came, until the last page (`page + 1 >= total_pages`) or an empty one; never past
--max-pages, nor on through a page that repeats the one before."""

from __future__ import annotations

import codecs
import json
import math
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

import duckdb

from pipeline.errors import ApiError, InputError, PipelineError
from pipeline.pull.client import Api, Failure, Query, Unreadable
from pipeline.pull.display import Fetching
from pipeline.pull.raw import RawFile


@dataclass
class Fetched:
    pages: int = 0
    sessions: int = 0  # items received, repeats across pages included
    total_pages: int | None = None
    total_count: int | None = None  # the sessions the last page says the window holds


@dataclass(frozen=True)
class Page:
    body: bytes  # UTF-8
    items: int
    total_pages: int | None
    total_count: int | None
    content: object  # what tells a page from the next: its items


def fetch(api: Api, query: Query, raw: RawFile, shown: Fetching, max_pages: int) -> Fetched:
    """Every page of `query` into `raw`. A failure says how far the pull got."""
    done = Fetched()
    previous: object = None
    while True:
        try:
            if done.pages >= max_pages:
                raise Failure("api", f"the window has more than --max-pages {max_pages} pages")
            page = api.page(done.pages, query, partial(read, number=done.pages))
            if page.items and page.content == previous:
                # A server that ignores `page` would be paged for ever.
                raise Failure("api", f"page {done.pages} repeats page {done.pages - 1}")
        except Failure as exc:
            raise _failed(exc, done) from None
        previous = page.content
        raw.write(page.body)
        done.pages += 1
        done.sessions += page.items
        done.total_pages = page.total_pages
        done.total_count = page.total_count if page.total_count is not None else done.total_count
        shown.page(done.pages, page.total_pages, done.sessions)
        # Where the API gives no total, a short page is the last.
        last = (
            done.pages >= page.total_pages
            if page.total_pages is not None
            else page.items < query.limit
        )
        if page.items == 0 or last:
            return done


def read(body: bytes, number: int) -> Page:
    """Page `number`: how many items it holds, and the totals it states. The items themselves
    are the ingest's to read: one that is odd (a byte that is not UTF-8, nesting deeper than
    Python reads) is quarantined, not this page."""
    body = _utf8(body, number)
    try:
        # As lenient as the ingest's reader, which quarantines an odd item alone: bytes that
        # are not UTF-8 are kept as they came, control characters in strings are taken, and
        # an integer longer than Python converts (4,300 digits) is not read here.
        page: Any = json.loads(
            body.decode("utf-8", errors="surrogateescape"), strict=False, parse_int=_integer
        )
    except RecursionError:
        return _read_deep(body, number)
    except ValueError as exc:
        raise Unreadable(f"page {number} is not JSON ({exc})") from None
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise _not_a_page(number)
    return Page(
        body,
        len(page["items"]),
        _count(page.get("total_pages"), number),
        _lenient(page.get("total_count")),
        page["items"],
    )


def _utf8(body: bytes, number: int) -> bytes:
    """The page in UTF-8, without a BOM: JSON may come in UTF-16 or UTF-32, which the raw file
    (a page a line, in UTF-8) cannot hold as they are, and a BOM there would be in the middle
    of the file, where it makes its line no JSON; the text is the same."""
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        return body
    if encoding == "utf-8-sig":
        return body[len(codecs.BOM_UTF8) :]
    try:
        return body.decode(encoding).encode("utf-8")
    except UnicodeError:
        raise Failure("data", f"page {number} is not text in {encoding.upper()}") from None


def _integer(text: str) -> int | float:
    """An integer as the page has it; one too long for Python to convert is infinite (as a
    count it is refused, and an item's is the ingest's to judge)."""
    limit = sys.get_int_max_str_digits()  # 0: no limit
    if not limit or len(text.lstrip("-")) <= limit:
        return int(text)
    return -math.inf if text.startswith("-") else math.inf


def _read_deep(body: bytes, number: int) -> Page:
    """A page Python's parser cannot read (nested too deep): DuckDB's, which has no such
    limit, counts its items."""
    with duckdb.connect() as con:
        row = con.execute(
            "SELECT json_type(j, '$.items'), json_array_length(j, '$.items'), "
            "json_extract(j, '$.total_pages')::VARCHAR, json_extract(j, '$.total_count')::VARCHAR "
            "FROM (SELECT CAST(? AS JSON) AS j)",
            [body.decode("utf-8", errors="replace")],
        ).fetchone()
    if row is None or row[0] != "ARRAY":
        raise _not_a_page(number)
    totals = [
        json.loads(text, parse_int=_integer) if text is not None else None for text in row[2:]
    ]
    return Page(
        body,
        int(row[1]),
        _count(totals[0], number),
        _lenient(totals[1]),
        body,
    )


def _not_a_page(number: int) -> Failure:
    return Unreadable(f"page {number} is not a list of sessions (no 'items' array)")


def _count(value: object, number: int) -> int | None:
    if value is not None and (type(value) is not int or value < 0):
        raise Failure("api", f"page {number} states total_pages {value!r}")
    return value


def _lenient(value: object) -> int | None:
    """total_count only serves a warning: one that is not a count is not stated."""
    return value if type(value) is int and value >= 0 else None


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
    if exc.kind == "data":
        return InputError("sessions pull", f"{exc}: no retry will mend it ({far})")
    return InputError("sessions pull", f"{exc} ({far})")
