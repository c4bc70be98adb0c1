"""The sessions API through the official SDK: each page's body kept as received, every
attempt counted, and every failure said as one of three kinds, without the key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from syllable_sdk import SyllableSDK, errors, models
from syllable_sdk.utils import BackoffStrategy, RetryConfig

from pipeline.errors import InputError

KEY_ENV = "SYLLABLE_API_KEY"
SERVER_URL = "https://api.syllable.cloud"  # the SDK's own default
# The first wait before a retry, in ms (doubling from there): tests make it tiny.
BACKOFF_ENV = "SESSIONS_PULL_BACKOFF_MS"
BACKOFF_MS = 500
MAX_WAIT_S = 60.0  # the longest wait between two attempts, Retry-After included
TIMEOUT_S = 60.0  # for one request
RETRIED = frozenset({429, 500, 502, 503, 504})  # what the SDK retries for sessions.list


class Failure(Exception):
    """A page could not be had. `kind`: "key" (missing or refused), "request" (the API refused
    what was asked: a setting to fix), or "api" (unreachable or failing: try again later)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def api_key() -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise InputError(KEY_ENV, "is not set", f"set {KEY_ENV} to your Syllable API key")
    return key


def server_url(text: str) -> str:
    """--server-url, checked: http(s), a host, no credentials (the key goes in a header)."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--server-url {text!r}", "is not an http(s) URL", f"e.g. {SERVER_URL}")
    if parts.username is not None or parts.password is not None:
        raise InputError("--server-url", "may not hold credentials", f"the key is ${KEY_ENV}")
    return text.strip().rstrip("/")


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


class Api:
    """One pull's connection to the API. `attempts` counts the requests sent (a retry is one
    more); `page` gives a page's body as the server sent it."""

    def __init__(self, url: str, key: str, retry_for_s: float) -> None:
        self.url = url
        self._key = key
        self.attempts = 0
        self._last: httpx.Response | None = None
        self._error: httpx.HTTPError | None = None
        # No redirects: the key travels in a header of our own, which httpx would carry to
        # whatever host a redirect names.
        self._http = httpx.Client(
            follow_redirects=False,
            timeout=TIMEOUT_S,
            event_hooks={"request": [self._sent], "response": [self._received]},
        )
        backoff = int(os.environ.get(BACKOFF_ENV, BACKOFF_MS))
        self._retry_for_s = retry_for_s
        strategy = BackoffStrategy(
            initial_interval=backoff,
            max_interval=int(MAX_WAIT_S * 1000),
            exponent=2.0,
            max_elapsed_time=int(retry_for_s * 1000),
            jitter_ms=backoff,
        )
        self._sdk = SyllableSDK(
            api_key_header=key,
            server_url=url,
            client=self._http,
            retry_config=RetryConfig("backoff", strategy, retry_connection_errors=True),
            timeout_ms=int(TIMEOUT_S * 1000),
            debug_logger=_Silent(),
        )

    def close(self) -> None:
        self._http.close()

    def _sent(self, request: httpx.Request) -> None:
        self.attempts += 1

    def _received(self, response: httpx.Response) -> None:
        response.read()
        self._last = response
        if response.status_code in RETRIED:
            # The SDK sleeps as long as Retry-After says, unbounded: a server asking for an
            # hour would stall a nightly job. Longer asks wait MAX_WAIT_S, then try again.
            for header, unit in (("retry-after", 1.0), ("retry-after-ms", 0.001)):
                try:
                    wait = float(response.headers.get(header, "")) * unit
                except ValueError:
                    continue
                if wait > MAX_WAIT_S:
                    response.headers[header] = str(MAX_WAIT_S / unit)

    def page(self, number: int, query: Query) -> bytes:
        """The body of page `number` (0-based), as received: the SDK's models would drop
        unknown fields, and one item without a timestamp fails their validation of the page,
        so the SDK's reading of it is not used."""
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
            )
        except errors.SyllableSDKError:
            pass  # its response is `_last`: judged below by its status, not by the SDK's model
        except httpx.TimeoutException:
            raise Failure("api", f"{self.url} did not answer within {TIMEOUT_S:.0f} s") from None
        except (httpx.HTTPError, errors.NoResponseError) as exc:
            raise Failure("api", f"cannot reach {self.url}: {self._scrub(exc)}") from None
        response = self._last
        if response is None:
            raise Failure("api", f"{self.url} sent no response")
        return self._judge(response)

    def _judge(self, response: httpx.Response) -> bytes:
        status = f"{response.status_code} {response.reason_phrase}".strip()
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
        if response.status_code in RETRIED:
            raise Failure(
                "api",
                f"{self.url} answered {status}, still after retrying for "
                f"{self._retry_for_s:g} s (--retry-for){said}",
            )
        if 300 <= response.status_code < 400:
            where = self._scrub(response.headers.get("location", "elsewhere"))
            raise Failure("request", f"{self.url} redirects to {where}: give that --server-url")
        raise Failure("request", f"{self.url} answered {status} to {response.url.path}{said}")

    def _scrub(self, text: object) -> str:
        """A text to show: on one line, and without the key, should a server echo it."""
        return " ".join(str(text).replace(self._key, "[key]").split())
