"""The sessions API through the official SDK: each page's body kept as received, every
attempt counted, retries and their waits our own (bounded by --retry-for and the pull's
deadline), and every failure said as one of three kinds, without the key."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from syllable_sdk import SyllableSDK, errors, models

from pipeline.errors import InputError

T = TypeVar("T")

KEY_ENV = "SYLLABLE_API_KEY"
SERVER_URL = "https://api.syllable.cloud"  # the SDK's own default
# The first wait before a retry, in ms (doubling from there): tests make it tiny.
BACKOFF_ENV = "SESSIONS_PULL_BACKOFF_MS"
BACKOFF_MS = 500
MAX_WAIT_S = 60.0  # the longest wait between two attempts, Retry-After included
TIMEOUT_S = 60.0  # for one request, its whole body included
# Retried: too many requests, and every 5xx (a proxy's 520-524 as much as a 503).
RETRIED = frozenset({429, *range(500, 600)})


class Failure(Exception):
    """A page could not be had. `kind`: "key" (missing or refused), "request" (the API refused
    what was asked: a setting to fix), "api" (unreachable or failing: try again later), or
    "data" (the API sent something no retry will mend)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class Unreadable(Failure):
    """A page that came whole by HTTP's account but reads as no page: not JSON, or JSON that
    is not a page. A body cut short where the connection's close ends it (no length given)
    reads so, as does a proxy's error page: retried like a failed request."""

    def __init__(self, message: str) -> None:
        super().__init__("api", message)


def api_key() -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise InputError(KEY_ENV, "is not set", f"set {KEY_ENV} to your Syllable API key")
    # A header carries printable ASCII only: httpx would refuse another key with its text
    # in the message (escaped, so that no scrubbing finds it), or fail to encode it.
    if not (key.isascii() and key.isprintable()):
        raise InputError(
            KEY_ENV,
            "holds a character an HTTP header cannot carry (a line break, a control or a "
            "non-ASCII character)",
            f"set {KEY_ENV} to the key exactly as given",
        )
    return key


def server_url(text: str) -> str:
    """--server-url, checked: http(s), a host, a valid port, no credentials (the key goes in a
    header)."""
    hint = f"e.g. {SERVER_URL}"
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises on a port that is not one
    except ValueError:
        raise InputError(f"--server-url {text!r}", "is not a valid URL", hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--server-url {text!r}", "is not an http(s) URL", hint)
    try:
        # What httpx and the resolver would refuse at the first request: an IP address that
        # is not one (999.1.1.1), a host name DNS cannot carry (an empty label, a label over
        # 63 characters), text that is not UTF-8.
        httpx.URL(text.strip())
        parts.hostname.encode("idna")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise InputError(f"--server-url {text!r}", f"is not a valid URL ({exc})", hint) from None
    if parts.username is not None or parts.password is not None:
        raise InputError("--server-url", "may not hold credentials", f"the key is ${KEY_ENV}")
    if parts.query or parts.fragment:
        # Not shown: a query is where a key would be put by mistake.
        raise InputError("--server-url", "may not hold a query or a fragment", hint)
    # Scheme and host in lower case: the same server is the same scope for `--since last`.
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, "", "")).rstrip("/")


def agent_id(text: str | None) -> str | None:
    """--agent, trimmed as the ingest trims an agent_id; an empty one (an unset variable in a
    script) is refused, not taken for every agent under a scope of its own."""
    if text is None:
        return None
    from pipeline.transform import BLANK

    if not text.strip(BLANK):
        raise InputError("--agent", "is empty", "leave it out to pull every agent")
    return text.strip(BLANK)


@dataclass(frozen=True)
class Query:
    """What one pull asks for, page after page."""

    start: str  # ISO 8601, UTC
    end: str
    limit: int
    agent: str | None = None


class _Silent:
    """The SDK's debug logger writes request headers, the key among them, when
    SYLLABLESDK_DEBUG is set: this one writes nothing, whatever the environment says."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    """The wait a response asks for, in seconds: Retry-After as seconds or as an HTTP date,
    or Retry-After-Ms; None if it asks for none that can be read."""
    for header, unit in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        text = response.headers.get(header, "").strip()
        if not text:
            continue
        try:
            wait = float(text) * unit
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            wait = (when.replace(tzinfo=when.tzinfo or UTC) - now).total_seconds()
        if math.isfinite(wait):
            return max(wait, 0.0)
    return None


class _Until(httpx.SyncByteStream):
    """A response body that must be in by `deadline` (time.monotonic()): a server sending a
    byte now and then never trips a read timeout, which bounds one wait, not the body."""

    def __init__(self, stream: httpx.SyncByteStream, deadline: float, request: httpx.Request):
        self._stream = stream
        self._deadline = deadline
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout("the body did not arrive in time", request=self._request)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _Bounded(httpx.HTTPTransport):
    """Each request within `TIMEOUT_S` and within the pull's deadline, body included."""

    def __init__(self, api: Api) -> None:
        super().__init__()
        self._api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        allowed = max(min(TIMEOUT_S, self._api.left()), 0.001)
        request.extensions["timeout"] = httpx.Timeout(allowed).as_dict()
        deadline = time.monotonic() + allowed
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Until(response.stream, deadline, request),
            extensions=response.extensions,
        )


class Api:
    """One pull's connection to the API. `attempts` counts the requests sent (a retry is one
    more); `page` gives a page's body as the server sent it. The retries are ours, not the
    SDK's: it retries neither a connection dropped mid-body nor within a bound of its waits
    (an HTTP-date Retry-After is slept to the date)."""

    def __init__(self, url: str, key: str, retry_for_s: float, max_time_s: float) -> None:
        self.url = url
        self._key = key
        self.attempts = 0
        self._last: httpx.Response | None = None
        self._retry_for_s = retry_for_s
        self.max_time_s = max_time_s
        self._deadline = time.monotonic() + max_time_s
        self._backoff_s = int(os.environ.get(BACKOFF_ENV, BACKOFF_MS)) / 1000
        # No redirects: the key travels in a header of our own, which httpx would carry to
        # whatever host a redirect names.
        self._http = httpx.Client(
            follow_redirects=False,
            transport=_Bounded(self),
            event_hooks={"request": [self._sent], "response": [self._received]},
        )
        self._sdk = SyllableSDK(
            api_key_header=key,
            server_url=url,
            client=self._http,
            timeout_ms=int(TIMEOUT_S * 1000),
            debug_logger=_Silent(),
        )

    def close(self) -> None:
        self._http.close()

    def left(self) -> float:
        """Seconds left before the pull's deadline (--max-time)."""
        return self._deadline - time.monotonic()

    def _sent(self, request: httpx.Request) -> None:
        self.attempts += 1

    def _received(self, response: httpx.Response) -> None:
        response.read()
        self._last = response

    def page(self, number: int, query: Query, read: Callable[[bytes], T]) -> T:
        """Page `number` (0-based): its body as received, as `read` makes it, after retrying
        429, 5xx, timeouts, lost connections and bodies `read` finds `Unreadable` for up to
        --retry-for (from the page's first failure), each wait the backoff or the server's
        Retry-After, whichever is longer, at most MAX_WAIT_S."""
        failing_since: float | None = None
        backoff = self._backoff_s
        while True:
            if self.left() <= 0:
                raise Failure("api", f"the pull took longer than --max-time {self.max_time_s:g} s")
            failed: httpx.Response | None = None
            asked: float | None = None
            try:
                response = self._once(number, query)
            except httpx.DecodingError as exc:
                # A body that does not decode as its Content-Encoding says: cut on the way, or
                # a server at fault; either may mend.
                problem = f"{self.url} sent a body that does not decode: {self._scrub(exc)}"
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and self.left() <= 0:
                    raise Failure(
                        "api", f"the pull took longer than --max-time {self.max_time_s:g} s"
                    ) from None
                problem = (
                    f"{self.url} did not answer in time"
                    if isinstance(exc, httpx.TimeoutException)
                    else f"cannot reach {self.url}: {self._scrub(exc) or type(exc).__name__}"
                )
            else:
                if response.status_code in RETRIED:
                    failed, asked = response, retry_after(response, datetime.now(UTC))
                    problem = ""
                else:
                    try:
                        return read(self._judge(response))
                    except Unreadable as exc:
                        problem = str(exc)
            now = time.monotonic()
            failing_since = now if failing_since is None else failing_since
            left = min(self._retry_for_s - (now - failing_since), self.left())
            wait = min(max(backoff + random.uniform(0, backoff), asked or 0.0), MAX_WAIT_S)
            if wait > left:
                if failed is not None:
                    raise self._failing(failed, asked)
                raise Failure("api", f"{problem}, still after retrying for {self._tried()}")
            time.sleep(wait)
            backoff = min(backoff * 2, MAX_WAIT_S)

    def _once(self, number: int, query: Query) -> httpx.Response:
        self._last = None
        search = ([models.SessionProperties.AGENT_ID], [query.agent]) if query.agent else None
        try:
            self._sdk.sessions.list(
                page=number,
                limit=query.limit,
                start_datetime=query.start,
                end_datetime=query.end,
                order_by=models.SessionProperties.TIMESTAMP,
                order_by_direction=models.OrderByDirection.ASC,
                search_fields=search[0] if search else None,
                search_field_values=search[1] if search else None,
                retries=None,
            )
        except errors.SyllableSDKError:
            pass  # its response is `_last`: judged by its status, not by the SDK's model
        except errors.NoResponseError as exc:
            raise httpx.TransportError(str(exc)) from None
        response = self._last
        if response is None:
            raise httpx.TransportError("no response")
        return response

    def _tried(self) -> str:
        return f"{self._retry_for_s:g} s (--retry-for)"

    def _failing(self, response: httpx.Response, asked: float | None) -> Failure:
        # A reason phrase is the server's text, and may echo the key.
        status = self._scrub(f"{response.status_code} {response.reason_phrase}")
        body = self._scrub(response.text)
        said = f": {body[:200]}" if body else ""
        if asked is not None and asked > MAX_WAIT_S:
            return Failure(
                "api",
                f"{self.url} answered {status} and asked to wait {asked:.0f} s, longer than "
                f"we wait ({MAX_WAIT_S:g} s at most, within --retry-for and --max-time){said}",
            )
        return Failure(
            "api", f"{self.url} answered {status}, still after retrying for {self._tried()}{said}"
        )

    def _judge(self, response: httpx.Response) -> bytes:
        # A reason phrase is the server's text, and may echo the key.
        status = self._scrub(f"{response.status_code} {response.reason_phrase}")
        if response.status_code == 200:
            return response.content
        if response.status_code in (401, 403):
            raise Failure(
                "key",
                f"{KEY_ENV}: {self.url} refused the key ({status}): set {KEY_ENV} to a valid "
                "Syllable API key",
            )
        body = self._scrub(response.text)
        said = f": {body[:200]}" if body else ""
        if 300 <= response.status_code < 400:
            where = self._scrub(response.headers.get("location", "elsewhere"))
            raise Failure("request", f"{self.url} redirects to {where}: give that --server-url")
        raise Failure("request", f"{self.url} answered {status} to {response.url.path}{said}")

    def _scrub(self, text: object) -> str:
        """A text to show: on one line, and without the key, should a server echo it."""
        return " ".join(str(text).replace(self._key, "[key]").split())
