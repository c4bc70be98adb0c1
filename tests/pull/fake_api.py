"""A fake of the Syllable sessions API: a real HTTP server on 127.0.0.1, in a thread, serving
`GET /api/v1/sessions/` as the API does (paging, window, order, search, the key header), with
faults on demand, and a record of every request it received."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PATH = "/api/v1/sessions/"
KEY = "test-key-5f0c2a9e7b41d3c8"


@dataclass
class Seen:
    """A request as the server received it."""

    path: str
    query: dict[str, list[str]]
    key: str | None
    at: float  # time.monotonic() when it arrived
    status: int = 0

    def one(self, name: str) -> str:
        (value,) = self.query[name]
        return value


@dataclass
class FakeApi:
    sessions: list[dict[str, Any]] = field(default_factory=list)
    key: str = KEY
    indent: int | None = None  # pretty-printed pages, as some proxies send them
    # Answers given before any other, one per request: (status, headers); a header's value
    # may be a function, called as the answer goes (a date to come).
    faults: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    fault_at_page: int = 0  # the faults start with the first request for this page
    die_after: int | None = None  # after this many pages served, the server goes away
    cut: int = 0  # this many pages are cut off mid-body, the connection closed
    # This many pages are sent without a length and cut off mid-body: by HTTP's account the
    # body is whole (its end is the connection's).
    cut_unsized: int = 0
    drip: bool = False  # pages come a byte every 0.2 s
    reason: str | None = None  # the reason phrase of every answer but a page's
    # Rewrites a page's body (its query, the body as the fake would send it).
    edit: Callable[[dict[str, list[str]], bytes], bytes] | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    served: int = 0

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        start = _moment(query.get("start_datetime", [None])[0])
        end = _moment(query.get("end_datetime", [None])[0])
        found = [
            s
            for s in self.sessions
            # An item without a timestamp is in every window (the fake's way of having one).
            if "timestamp" not in s
            or (
                (start is None or _moment(s["timestamp"]) >= start)  # type: ignore[operator]
                and (end is None or _moment(s["timestamp"]) < end)
            )  # type: ignore[operator]
        ]
        fields, values = query.get("search_fields", []), query.get("search_field_values", [])
        for name, value in zip(fields, values, strict=True):
            found = [s for s in found if str(s.get(name)) == value]
        reverse = query.get("order_by_direction", ["asc"])[0] == "desc"
        order = query.get("order_by", ["timestamp"])[0]
        found.sort(key=lambda s: str(s.get(order, "")), reverse=reverse)
        number, limit = int(query.get("page", ["0"])[0]), int(query.get("limit", ["25"])[0])
        items = found[number * limit : (number + 1) * limit]
        return {
            "items": items,
            "page": number,
            "page_size": limit,
            "total_pages": math.ceil(len(found) / limit),
            "total_count": len(found),
        }

    def body(self, query: dict[str, list[str]]) -> bytes:
        body = json.dumps(self.page(query), indent=self.indent).encode()
        return self.edit(query, body) if self.edit is not None else body


def _within(text: str | None, start: datetime | None, end: datetime | None) -> bool:
    moment = _moment(text)
    if moment is None:
        return True
    return (start is None or moment >= start) and (end is None or moment < end)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _handler(api: FakeApi, server: ThreadingHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            seen = Seen(
                parts.path,
                parse_qs(parts.query),
                self.headers.get("Syllable-API-Key"),
                time.monotonic(),
            )
            api.seen.append(seen)
            if api.die_after is not None and api.served >= api.die_after:
                # Gone: no answer on this connection, and none listening any more.
                self.close_connection = True
                threading.Thread(target=_stop, args=(server,), daemon=True).start()
                return
            if seen.path != PATH:
                return self._send(seen, 404, b'{"detail": "Not Found"}')
            if seen.key != api.key:
                return self._send(seen, 401, b'{"detail": "Invalid API key"}')
            page = int(seen.query.get("page", ["0"])[0])
            if api.faults and page >= api.fault_at_page:
                status, headers = api.faults.pop(0)
                return self._send(seen, status, b'{"detail": "try later"}', headers)
            api.served += 1
            body = api.body(seen.query)
            if api.cut or api.drip:
                return self._break(seen, body)
            if api.cut_unsized:
                api.cut_unsized -= 1
                seen.status = 200
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self._send(seen, 200, body)

        def _break(self, seen: Seen, body: bytes) -> None:
            seen.status = 200
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if api.cut:
                api.cut -= 1
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            try:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the client gave up

        def _send(
            self, seen: Seen, status: int, body: bytes, headers: dict[str, Any] | None = None
        ) -> None:
            seen.status = status
            self.send_response(status, api.reason if status != 200 else None)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value() if callable(value) else value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def serving(api: FakeApi) -> Iterator[FakeApi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.RequestHandlerClass = _handler(api, server)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        if thread.is_alive():
            server.shutdown()
        server.server_close()
