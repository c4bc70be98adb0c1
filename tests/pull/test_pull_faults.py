"""`sessions pull` against servers and inputs that misbehave (a hostile tester's findings):
odd Retry-After, bodies cut or trickling, pages for ever, keys a header cannot carry, inputs
once answered with a traceback, quiet nights, failed ingests run again, odd encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import InputError
from pipeline.pull import client, command, window
from pipeline.store import location
from tests.conftest import manifest, rejects, session, stored
from tests.pull.fake_api import KEY, FakeApi, serving
from tests.pull.test_pull import WINDOW, no_key_anywhere, pull, raw_lines, report


def one_line(result: Any, code: int) -> str:
    assert result.returncode == code, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "Traceback" not in line
    return str(line)


def test_retry_after_as_a_date_waits_within_the_cap_and_retry_for(wh: Path) -> None:
    def soon() -> str:
        return format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)

    api = FakeApi([session(n) for n in range(3)], faults=[(429, {"Retry-After": soon})])
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--json"))
    assert [s.status for s in api.seen] == [429, 200]
    assert api.seen[1].at - api.seen[0].at >= 1.0  # the date was waited for
    assert done["retries"] == 1

    # A date far ahead: no sleeping until then, nor past --retry-for.
    far = (429, {"Retry-After": "Fri, 21 Oct 2099 07:28:00 GMT"})
    api = FakeApi([session(n) for n in range(3)], faults=[far] * 5)
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--retry-for", "3"), 5)
    assert "429 Too Many Requests and asked to wait" in line
    assert len(api.seen) == 1


def test_a_future_until_is_capped_at_the_runs_start(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(3)])
    with serving(api):
        result = pull(api, wh, "--since", "2026-10-01", "--until", "2099-01-01", "--json")
        done = report(result)
    assert "is after the run's start: pulling up to" in result.stderr
    (seen,) = api.seen
    assert seen.one("end_datetime") == done["pull"]["until"]
    assert datetime.fromisoformat(done["pull"]["until"]) <= datetime.now(UTC)
    assert manifest(wh)["ingests"][-1]["pull"]["until"] == done["pull"]["until"]


def test_cut_bodies_are_retried_and_stalls_and_endless_pages_are_bounded(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(6)], cut=1)
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "3", "--json"))
    assert [s.one("page") for s in api.seen] == ["0", "0", "1"]
    assert done["retries"] == 1 and len(stored(wh)) == 6

    # A body that trickles in: the pull's deadline holds, however often a byte comes.
    api = FakeApi([session(n) for n in range(6)], drip=True)
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--max-time", "2"), 5)
    assert "took longer than --max-time 2 s" in line and "stopped after 0 page(s)" in line

    # A server that ignores `page` and states no total: the same page again is the end.
    def same(query: dict[str, list[str]], body: bytes) -> bytes:
        page = json.loads(FakeApi([session(n) for n in range(6)]).body({"limit": ["3"]}))
        return json.dumps({"items": page["items"], "total_pages": None}).encode()

    api = FakeApi(edit=same)
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--page-size", "3"), 5)
    assert "page 1 repeats page 0 (stopped after 1 page(s), 3 session(s)" in line

    # One that states a total too large to page through.
    api = FakeApi([session(n) for n in range(10)])
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--page-size", "2", "--max-pages", "3"), 5)
    assert "more than --max-pages 3 pages (stopped after 3 of 5 page(s), 6 session(s)" in line
    assert len(stored(wh)) == 6  # only the first pull's


def test_a_key_a_header_cannot_carry_exits_2_without_showing_it(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(3)])
    with serving(api):
        for key in ("SECRETab\ncd0123", "SECRETk\u00e9y0123", "SECRET\tkey0123"):
            result = pull(api, wh, *WINDOW, key=key)
            line = one_line(result, 2)
            assert "SYLLABLE_API_KEY: holds a character an HTTP header cannot carry" in line
            for part in key.split():
                assert part not in result.stdout + result.stderr
            assert "SECRET" not in result.stdout + result.stderr
    assert api.seen == [] and not wh.exists()


def test_odd_inputs_are_one_line_and_exit_2_or_3(wh: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    api = FakeApi([session(n) for n in range(3)])
    # Through the command, one of each kind; the rest below, by the functions that judge them.
    cases: list[tuple[list[str], int, str]] = [
        (["--since", "9999-12-31T23:59:59-05:00"], 2, "is past the year 9999 in UTC"),
        ([*WINDOW, "--server-url", "http://[::1"], 2, "is not a valid URL"),
        ([*WINDOW, "-w", str(a_file)], 3, "is not a folder"),
        ([*WINDOW, "--raw", str(wh / ".staging")], 2, "is inside the warehouse"),
    ]
    with serving(api):
        for args, code, said in cases:
            line = one_line(pull(api, wh, *args), code)
            assert said in line, (args, line)
        query = pull(api, wh, *WINDOW, "--server-url", f"{api.url}/?key=SECRETQ")
        assert "--server-url: may not hold a query" in one_line(query, 2)
        assert "SECRETQ" not in query.stderr
        # Inside the warehouse, raw/ and below are the raw layer's; the scheme's case is no
        # other server.
        upper = api.url.replace("http://", "HTTP://")
        args = ("--raw", str(wh / "raw" / "api"), "--server-url", upper, "--json")
        done = report(pull(api, wh, *WINDOW, *args))
    assert done["pull"]["server_url"] == api.url
    assert len(api.seen) == 1 and a_file.read_text() == "x"
    assert len(list((wh / "raw" / "api").rglob("*.gz"))) == 1

    long_label = "http://" + "a" * 64 + ".example.com"
    for url in ("http://127.0.0.1:abc", "http://127.0.0.1:99999", "http://[::1", "http://a..b"):
        with pytest.raises(InputError, match="is not a valid URL"):
            client.server_url(url)
    # What httpx or the resolver would refuse at the first request (exit 70 before).
    for url in ("http://999.1.1.1", long_label):
        with pytest.raises(InputError, match="is not a valid URL"):
            client.server_url(url)
    with pytest.raises(InputError, match="is past the year 9999 in UTC"):
        window.moment("--until", "9999-12-31T23:59:59-01:00")
    with pytest.raises(InputError, match="is before the year 1 in UTC"):
        window.moment("--since", "0001-01-01T00:00:00+01:00")
    warehouse = location.of(wh)
    for inside in ("sessions", "rejects", "sessions/_delta_log", "."):
        with pytest.raises(InputError, match="is inside the warehouse"):
            command.raw_folder(warehouse, str(wh / inside))
    with pytest.raises(InputError, match="--raw: is empty"):
        command.raw_folder(warehouse, "")


def test_identical_pages_still_advance_since_last(wh: Path) -> None:
    api = FakeApi([])  # a quiet API: every page is the same, empty
    with serving(api):
        report(pull(api, wh, *WINDOW, "--json"))
        for until in ("2026-11-05", "2026-11-06"):
            report(pull(api, wh, "--since", "last", "--overlap", "0", "--until", until, "--json"))
        huge = pull(api, wh, "--since", "last", "--overlap", "999999d")
    assert [e["pull"]["since"][:10] for e in manifest(wh)["ingests"]] == [
        "2026-10-01",
        "2026-11-01",
        "2026-11-05",
    ]
    assert "--overlap: reaches from 2026-11-06T00:00:00Z back past the year 1" in one_line(huge, 2)


def test_a_failed_ingest_keeps_its_pages_once_and_says_so(wh: Path) -> None:
    # No timestamp: every item is rejected.
    api = FakeApi([{"session_id": f"x{n}", "duration": 1.0} for n in range(3)])
    with serving(api):
        for _ in range(2):
            line = one_line(pull(api, wh, *WINDOW, "--max-reject-rate", "0.5"), 4)
            (kept,) = (wh / "raw").rglob("*.gz")
            assert line.endswith(f"; the pages are kept in {kept}")
        report(pull(api, wh, *WINDOW, "--json"))
    assert list((wh / "raw").rglob("*.gz")) == [kept]
    assert len(rejects(wh)) == 3


def test_pages_in_utf16_or_with_odd_items_are_kept_and_quarantined(wh: Path) -> None:
    def odd(query: dict[str, list[str]], body: bytes) -> bytes:
        if query["page"] == ["0"]:
            return body.decode().encode("utf-16")
        if query["page"] == ["1"]:  # an item nested deeper than Python reads
            deep = b"[" * 100_000 + b"]" * 100_000
            return body.replace(b'"items": [', b'"items": [' + deep + b",")
        return body.replace(b'"s7"', b'"s7\xff"')  # a byte that is not UTF-8

    api = FakeApi([session(n) for n in range(9)], edit=odd)
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "3", "--json"))
    assert done["pages_fetched"] == 3 and done["pull"]["sessions_received"] == 10
    assert sorted(r["session_id"] for r in stored(wh)) == [f"s{n}" for n in range(6)]
    # The ingest quarantines the deep item alone, and the page whose line is not UTF-8 whole.
    assert done["rejected_by_reason"] == {
        "record: invalid_utf8": 1,
        "record: not_an_object": 1,
    }
    assert len(raw_lines(wh)) == 3  # the UTF-16 page kept as UTF-8 text, on one line
    assert b'"s7\xff"' in raw_lines(wh)[2]
    # A page nested too deep for Python, stating a count longer than Python converts.
    deep_items = b'[{"session_id": "d1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}]"
    body = b'{"items": ' + deep_items + b', "total_pages": 1, "total_count": ' + b"9" * 5001 + b"}"
    api = FakeApi(edit=lambda query, _: body)
    with serving(api):
        result = pull(api, wh, *WINDOW, "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    # A page that is no text in its encoding: the data's fault, not the network's.
    api = FakeApi([session(0)], edit=lambda query, body: body.decode().encode("utf-16")[:-1])
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW), 2)
    assert "page 0 is not text in UTF-16" in line and "no retry will mend it" in line


def test_total_count_disagreeing_with_the_pages_is_a_warning(wh: Path) -> None:
    def lie(query: dict[str, list[str]], body: bytes) -> bytes:
        page = json.loads(body)
        return json.dumps({**page, "total_pages": 1}).encode()

    api = FakeApi([session(n) for n in range(5)], edit=lie)
    with serving(api):
        result = pull(api, wh, *WINDOW, "--page-size", "2", "--json")
        done = report(result)
    said = "the API said the window holds 5 session(s), but 2 were received"
    assert result.stderr.strip() == f"warning: {said}"
    assert done["warnings"] == [said]


def test_bodies_that_do_not_decode_and_every_5xx_are_retried(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(4)], fault_at_page=1)
    # A body that is not the gzip (or deflate) its Content-Encoding names, as a page or as an
    # error; a proxy's 520 and a 501, which the SDK would not retry.
    api.faults = [
        (200, {"Content-Encoding": "gzip"}),
        (503, {"Content-Encoding": "deflate"}),
        (520, {}),
        (501, {}),
    ]
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "2", "--json"))
    assert [s.status for s in api.seen] == [200, 200, 503, 520, 501, 200]
    assert done["retries"] == 4 and len(stored(wh)) == 4
    # For as long as --retry-for: then exit 5, one line.
    api = FakeApi([session(0)], faults=[(200, {"Content-Encoding": "gzip"})] * 1000)
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--retry-for", "0.3"), 5)
    assert "sent a body that does not decode" in line and "still after retrying for 0.3 s" in line


def test_a_key_echoed_in_a_reason_phrase_is_not_shown(wh: Path) -> None:
    for status, code in [(404, 2), (503, 5), (401, 2)]:
        api = FakeApi([session(0)], reason=f"Bad key {KEY}", faults=[(status, {})] * 1000)
        if status == 401:
            api.key = "another key"  # the fake refuses ours with a 401
        with serving(api):
            result = pull(api, wh, *WINDOW, "--retry-for", "0.1")
        line = one_line(result, code)
        assert f"{status} Bad key [key]" in line, line
        no_key_anywhere(wh, result.stdout, result.stderr)


def test_pages_with_a_bom_control_characters_or_huge_integers_lose_no_session(wh: Path) -> None:
    def odd(query: dict[str, list[str]], body: bytes) -> bytes:
        body = b"\xef\xbb\xbf" + body  # every page with a UTF-8 BOM
        if query["page"] == ["0"]:  # a raw tab inside a string: the ingest's to judge
            return body.replace(b'"Agent 1"', b'"Agent\t1"')
        # An integer longer than Python converts, in an unknown field of one item.
        return body.replace(b'"s3",', b'"s3", "huge": ' + b"9" * 5000 + b",")

    api = FakeApi([session(n) for n in range(6)], edit=odd)
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "3", "--json"))
    assert done["pages_fetched"] == 2 and done["pull"]["sessions_received"] == 6
    # The item with the tab is quarantined alone; the others, s3 with its number, are stored.
    assert done["rejected_by_reason"] == {"record: invalid_json": 1}
    assert sorted(r["session_id"] for r in stored(wh)) == ["s0", "s2", "s3", "s4", "s5"]
    assert all(not line.startswith(b"\xef\xbb\xbf") for line in raw_lines(wh))


def test_a_page_that_reads_as_no_page_is_retried(wh: Path) -> None:
    # Cut short where no length was given: by HTTP's account whole, but not JSON.
    api = FakeApi([session(n) for n in range(6)], cut_unsized=1)
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "3", "--json"))
    assert [s.one("page") for s in api.seen] == ["0", "0", "1"]
    assert done["retries"] == 1 and len(stored(wh)) == 6
    # One that stays so: exit 5 once --retry-for is spent, one line.
    api = FakeApi([session(0)], edit=lambda query, body: body + b" trailing")
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--retry-for", "0.3"), 5)
    assert "page 0 is not JSON (Extra data" in line and "still after retrying for 0.3 s" in line
    assert len(api.seen) > 1


def test_an_empty_agent_is_refused_and_one_with_blanks_is_trimmed(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(3)])
    with serving(api):
        line = one_line(pull(api, wh, *WINDOW, "--agent", " "), 2)
        assert "--agent: is empty (leave it out to pull every agent)" in line and not api.seen
        done = report(pull(api, wh, *WINDOW, "--agent", " agent-1\t", "--json"))
    assert api.seen[0].query["search_field_values"] == ["agent-1"]
    assert done["pull"]["agent"] == "agent-1" and len(stored(wh)) == 1


def test_a_damaged_record_of_a_pull_is_the_warehouse_s_fault(wh: Path) -> None:
    # The manifest's record of the last pull, not an option the user gave, holds a bad time.
    api = FakeApi([])
    with serving(api):
        report(pull(api, wh, *WINDOW, "--json"))
        (latest,) = sorted((wh / "manifests").glob("*.json"))[-1:]
        body = json.loads(latest.read_text())
        body["ingests"][-1]["pull"]["until"] = "garbage"
        latest.write_text(json.dumps(body))
        line = one_line(pull(api, wh, "--since", "last"), 3)
    assert "has an until that is not a time ('garbage')" in line
