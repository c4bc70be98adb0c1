"""`sessions pull` against a fake sessions API on 127.0.0.1, through the real SDK over real
HTTP: the requests it sends, what it keeps raw, and what the warehouse holds after."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import SESSIONS, manifest, rejects, run_cli, session, stored, tree
from tests.pull.fake_api import KEY, PATH, FakeApi, serving

WINDOW = ("--since", "2026-10-01", "--until", "2026-11-01")


def _aside(wh: Path) -> Path:
    folder = wh.parent / "tmp"
    folder.mkdir(exist_ok=True)
    return folder


def pull(
    api: FakeApi, wh: Path, *args: str, key: str | None = KEY, background: bool = False
) -> Any:
    # SYLLABLESDK_DEBUG: the SDK's own logger would print the request headers, key and all.
    env = {**os.environ, "SESSIONS_PULL_BACKOFF_MS": "1", "SYLLABLESDK_DEBUG": "1"}
    env.pop("SYLLABLE_API_KEY", None)
    # The pages are written aside, in the temporary folder, until the pull is whole.
    env["TMPDIR"] = str(_aside(wh))
    if key is not None:
        env["SYLLABLE_API_KEY"] = key
    command = [str(SESSIONS), "pull", "--server-url", api.url, "-w", str(wh), *args]
    if background:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert key is None or key not in result.stdout + result.stderr
    return result


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def raw_lines(wh: Path) -> list[bytes]:
    return [
        line
        for path in sorted((wh / "raw").rglob("*.ndjson.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]


def no_key_anywhere(wh: Path, *outputs: str) -> None:
    """The key is in no output and no stored byte (the raw files read unzipped too)."""
    assert all(KEY not in text for text in outputs)
    for name, content in tree(wh).items():
        assert KEY.encode() not in content, name
        if name.endswith(".gz"):
            assert KEY.encode() not in gzip.decompress(content), name


def test_many_pages_odd_items_and_the_same_pull_again(wh: Path) -> None:
    sessions = [session(n) for n in range(23)]
    sessions[4]["sentiment_score"] = 0.5  # a field the schema does not know
    sessions.append({"session_id": "no-time", "agent_id": "agent-1", "duration": 3.0})
    # Pretty-printed pages: kept one page a line, tokens unchanged.
    api = FakeApi(sessions, indent=2)
    with serving(api):
        first = report(pull(api, wh, *WINDOW, "--page-size", "5", "--json"))

        assert [s.path for s in api.seen] == [PATH] * 5
        assert [s.one("page") for s in api.seen] == ["0", "1", "2", "3", "4"]
        for seen in api.seen:
            assert seen.key == KEY
            assert seen.one("limit") == "5"
            assert seen.one("start_datetime") == "2026-10-01T00:00:00Z"
            assert seen.one("end_datetime") == "2026-11-01T00:00:00Z"
            assert seen.one("order_by") == "timestamp"
            assert seen.one("order_by_direction") == "asc"
            assert "search_fields" not in seen.query
        # Raw: each page as served, one a line.
        served = [api.body(s.query) for s in api.seen]
        assert raw_lines(wh) == [body.replace(b"\n", b" ") for body in served]

        assert first["pages_fetched"] == 5 and first["retries"] == 0
        assert first["pull"]["sessions_received"] == 24
        assert first["rows_read"] == 24 and first["rows_accepted"] == 23
        assert first["rejected_by_reason"] == {"timestamp: missing": 1}
        assert first["unknown_fields"] == ["sentiment_score"]
        assert first["pull"]["raw_files"] == [str(p) for p in (wh / "raw").rglob("*.gz")]
        rows = stored(wh)
        assert sorted(r["session_id"] for r in rows) == sorted(f"s{n}" for n in range(23))
        assert [json.loads(r["extra_fields"]) for r in rows if r["extra_fields"]] == [
            {"sentiment_score": 0.5}
        ]
        (rejected,) = rejects(wh)
        assert json.loads(rejected["record"])["session_id"] == "no-time"
        assert manifest(wh)["ingests"][-1]["pull"] == {
            "server_url": api.url,
            "agent": None,
            "since": "2026-10-01T00:00:00Z",
            "until": "2026-11-01T00:00:00Z",
            "pages": 5,
            "sessions": 24,
        }

        # The same pull again: the same pages, nothing changes, not even the raw layer.
        before = tree(wh)
        again = pull(api, wh, *WINDOW, "--page-size", "5")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().endswith(
            f"the same pages as pull {first['run_id']} ingested; {wh} is unchanged"
        )
        assert tree(wh) == before
        assert len(api.seen) == 10
    no_key_anywhere(wh, again.stdout, again.stderr, json.dumps(first))

    # The raw layer rebuilds the warehouse elsewhere: the same sessions, the same rejects.
    rebuilt = wh.parent / "rebuilt"
    assert run_cli("ingest", wh / "raw", "-w", rebuilt, "-q").returncode == 0
    assert [(r["session_key"], r["duration"]) for r in stored(rebuilt)] == [
        (r["session_key"], r["duration"]) for r in rows
    ]
    assert [r["record"] for r in rejects(rebuilt)] == [rejected["record"]]


def test_retries_on_429_and_503_honour_retry_after(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(6)], fault_at_page=1)
    api.faults = [(429, {"Retry-After": "1"}), (503, {})]
    with serving(api):
        done = report(pull(api, wh, *WINDOW, "--page-size", "2", "--json"))
    assert [(s.one("page"), s.status) for s in api.seen] == [
        ("0", 200),
        ("1", 429),
        ("1", 503),
        ("1", 200),
        ("2", 200),
    ]
    # Retry-After: 1 was waited for (the backoff alone is a millisecond here).
    assert api.seen[2].at - api.seen[1].at >= 0.95
    assert done["pages_fetched"] == 3 and done["retries"] == 2
    assert len(stored(wh)) == 6


def test_agent_filter_is_sent_as_a_search(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(6)])
    with serving(api):
        report(pull(api, wh, *WINDOW, "--agent", "agent-1", "--json"))
    (seen,) = api.seen
    assert seen.query["search_fields"] == ["agent_id"]
    assert seen.query["search_field_values"] == ["agent-1"]
    assert sorted(r["session_id"] for r in stored(wh)) == ["s1", "s4"]


def test_missing_or_refused_key_exits_2_and_touches_nothing(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(3)])
    with serving(api):
        missing = pull(api, wh, *WINDOW, key=None)
        assert missing.returncode == 2
        assert missing.stderr.strip() == (
            "error: SYLLABLE_API_KEY: is not set (set SYLLABLE_API_KEY to your Syllable API key)"
        )
        assert api.seen == []
        wrong = "wrong-key-0123456789abcdef"
        refused = pull(api, wh, *WINDOW, key=wrong)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert "refused the key (401 Unauthorized)" in line and "set SYLLABLE_API_KEY" in line
    assert wrong not in refused.stderr + refused.stdout
    assert [s.key for s in api.seen] == [wrong]  # sent once: a 401 is not retried
    assert not wh.exists()


def test_a_failure_mid_pull_commits_nothing_and_says_how_far(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(10)])
    with serving(api):
        report(pull(api, wh, "--since", "2026-10-01", "--until", "2026-10-04", "--json"))
    before = tree(wh)

    api = FakeApi([session(n) for n in range(10)], die_after=2)
    with serving(api):
        died = pull(api, wh, *WINDOW, "--page-size", "2", "--retry-for", "0.5")
    assert died.returncode == 5, died.stderr
    (line,) = died.stderr.splitlines()
    assert "stopped after 2 of 5 page(s), 4 session(s); nothing was committed" in line
    assert tree(wh) == before
    assert list(_aside(wh).iterdir()) == []

    # Failing for longer than --retry-for: the last answer is said.
    api = FakeApi([session(n) for n in range(10)], faults=[(503, {})] * 1000)
    with serving(api):
        failing = pull(api, wh, *WINDOW, "--retry-for", "0.3")
    assert failing.returncode == 5
    assert "503 Service Unavailable, still after retrying for 0.3 s" in failing.stderr
    assert "stopped after 0 page(s)" in failing.stderr
    assert len(api.seen) > 1
    assert tree(wh) == before

    # Answers that are not a page of sessions, for longer than --retry-for.
    api = FakeApi([session(n) for n in range(10)], faults=[(200, {})] * 1000)
    with serving(api):
        odd = pull(api, wh, *WINDOW, "--retry-for", "0.3")
    assert odd.returncode == 5
    assert "page 0 is not a list of sessions (no 'items' array), still after" in odd.stderr
    assert tree(wh) == before

    # Nothing listening at all.
    gone = pull(api, wh, *WINDOW, "--retry-for", "0.2")
    assert gone.returncode == 5 and "cannot reach" in gone.stderr
    assert tree(wh) == before


def test_since_last_across_three_runs_with_late_redeliveries(wh: Path) -> None:
    def at(day: int, n: int, duration: float | None = 60.0) -> dict[str, Any]:
        return session(n, timestamp=f"2026-11-{day:02d}T12:00:00Z", duration=duration)

    api = FakeApi([at(1, 1), at(5, 2), at(9, 3, None)])
    with serving(api):
        first_ever = pull(api, wh, "--since", "last", "--until", "2026-11-10")
        assert first_ever.returncode == 2 and "no earlier pull" in first_ever.stderr
        assert api.seen == []
        one = report(pull(api, wh, "--since", "2026-11-01", "--until", "2026-11-10", "--json"))
        assert one["sessions_new"] == 3

        # Later: s3's duration is filled in; s1's changes too, but is older than the overlap.
        api.sessions = [at(1, 1, 99.0), at(5, 2), at(9, 3, 42.0), at(12, 4)]
        two = report(pull(api, wh, "--since", "last", "--until", "2026-11-15", "--json"))
        assert two["pull"]["since"] == "2026-11-08T00:00:00Z"  # 2026-11-10 less two days
        assert (two["sessions_new"], two["sessions_updated"]) == (1, 1)

        api.sessions.append(at(14, 5))
        api.sessions[3] = at(12, 4, 7.0)
        three = report(pull(api, wh, "--since", "last", "--overlap", "3d", "--json"))
    starts = [s.one("start_datetime") for s in api.seen]
    ends = [s.one("end_datetime") for s in api.seen]
    assert starts == ["2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z", "2026-11-12T00:00:00Z"]
    assert ends[:2] == ["2026-11-10T00:00:00Z", "2026-11-15T00:00:00Z"]
    # Without --until, the window ends when the run started, to the second.
    assert ends[2] == three["pull"]["until"] and ends[2] > "2026-11-30"
    assert (three["sessions_new"], three["sessions_updated"]) == (1, 1)
    durations = {r["session_id"]: r["duration"] for r in stored(wh)}
    assert durations == {"s1": 60.0, "s2": 60.0, "s3": 42.0, "s4": 7.0, "s5": 60.0}
    assert [e["pull"]["until"][:10] for e in manifest(wh)["ingests"]] == [
        "2026-11-10",
        "2026-11-15",
        ends[2][:10],
    ]


def test_sigterm_while_waiting_to_retry_leaves_everything_as_it_was(wh: Path) -> None:
    api = FakeApi([session(n) for n in range(6)], fault_at_page=1)
    api.faults = [(429, {"Retry-After": "30"})]
    with serving(api):
        running = pull(api, wh, *WINDOW, "--page-size", "2", background=True)
        deadline = time.monotonic() + 60
        while not any(s.status == 429 for s in api.seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        running.send_signal(signal.SIGTERM)
        out, err = running.communicate(timeout=60)
    assert out == ""
    assert running.returncode == 143, err
    assert err.strip() == "error: stopped by SIGTERM; the warehouse is as it was"
    assert not wh.exists() and list(_aside(wh).iterdir()) == []
    assert len(api.seen) == 2  # it was waiting: the retry never went out
