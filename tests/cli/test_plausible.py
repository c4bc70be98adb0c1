"""Values that are valid JSON but not plausible data: rejected at ingest, with a reason, and
whatever is stored within the bounds, every reading command answers it (issue #12, §3)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ndjson, rejects, run_cli, session, stored

Write = Callable[[str, bytes], Path]


def ingest(wh: Path, *paths: Path, options: tuple[str, ...] = ()) -> dict[str, Any]:
    result = run_cli("ingest", *paths, "-w", wh, "--json", *options)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["rows_read"] == report["rows_accepted"] + report["rows_rejected"]
    return report


def strict_json(text: str) -> Any:
    """JSON as the standard has it: `NaN`, `Infinity` and `-Infinity` are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def reasons_by_session(wh: Path) -> dict[str, list[tuple[str, str, str]]]:
    found = {}
    for row in rejects(wh):
        key = json.loads(row["record"])["session_id"]
        found[key] = [(r["field"], r["rule"], r["value"]) for r in row["reasons"]]
    return found


def reads_back(wh: Path, out: Path | None = None) -> None:
    """The reading commands answer over `wh`, exit 0, and their JSON is strict JSON; with
    `out`, `sessions report` (the slowest) and `sessions check` too."""
    for by in ("agent", "prompt-version", "day"):
        result = run_cli("stats", "-w", wh, "--by", by, "--format", "json", "--all-columns")
        assert result.returncode == 0, (by, result.stderr)
        assert strict_json(result.stdout), by
    result = run_cli("stats", "-w", wh, "--by", "day", "--format", "table")
    assert result.returncode == 0, result.stderr
    query = (
        "SELECT session_id, timestamp, local_date, local_time, local_week_start, duration, "
        "sum(duration) OVER () AS total, avg(duration) OVER () AS mean, "
        "stddev_samp(duration) OVER () AS sd, var_samp(duration) OVER () AS var "
        "FROM sessions ORDER BY timestamp"
    )
    result = run_cli("sql", "-w", wh, "--format", "json", query)
    assert result.returncode == 0, result.stderr
    rows = strict_json(result.stdout)
    assert rows and all(math.isfinite(row["total"]) for row in rows)
    if out is not None:
        result = run_cli("report", "-w", wh, "--out", out)
        assert result.returncode == 0, result.stderr
        result = run_cli("check", "-w", wh)
        assert result.returncode == 0, result.stdout + result.stderr


# --- timestamps --------------------------------------------------------------------------

OUT_OF_RANGE = {
    "go-zero": "0001-01-01T00:00:00Z",  # Go's zero time, the usual "unset"
    "go-zero-naive": "0001-01-01T00:00:00",
    "year-0": "0000-01-01T00:00:00Z",
    "year-0-offset": "0000-06-15T12:00:00+05:30",
    "negative-year": "-0001-01-01T00:00:00Z",
    "far-past": "-5000-03-01T00:00:00Z",
    "five-digit-year": "+10000-01-01T00:00:00Z",
    "last-python-second": "9999-12-31T23:59:59Z",
    "before-epoch": "1969-12-31T23:59:59.999999Z",
    "end-of-window": "2100-01-01T00:00:00Z",
    "crosses-epoch-by-offset": "1970-01-01T00:30:00+01:00",
    "crosses-2100-by-offset": "2099-12-31T23:30:00-01:00",
}
NOT_A_TIMESTAMP = {
    "unsigned-five-digits": "10000-01-01T00:00:00Z",
    "beyond-any-calendar": "+999999999-01-01T00:00:00Z",
    "month-zero": "0000-00-00T00:00:00Z",
}
IN_WINDOW = {
    "epoch": "1970-01-01T00:00:00Z",
    "epoch-by-offset": "1970-01-01T01:00:00+01:00",
    "last-microsecond": "2099-12-31T23:59:59.999999Z",
    "last-second-by-offset": "2100-01-01T10:59:59+11:00",
    "today": "2026-10-01T12:00:00Z",
}


def test_timestamps_outside_the_window_are_rejected_and_the_rest_ingests(
    write: Write, wh: Path
) -> None:
    cases = OUT_OF_RANGE | NOT_A_TIMESTAMP | IN_WINDOW
    path = write(
        "times.ndjson",
        ndjson(
            [
                session(n, session_id=name, timestamp=text)
                for n, (name, text) in enumerate(cases.items())
            ]
        ),
    )
    # Kept raw: with identities redacted, `+10000-01-01` would read as a phone number.
    report = ingest(wh, path, options=("--pii", "keep"))
    assert report["rejected_by_reason"] == {
        "timestamp: out_of_range": len(OUT_OF_RANGE),
        "timestamp: not_a_timestamp": len(NOT_A_TIMESTAMP),
    }
    # Each with the text as received, and nothing else said of it.
    assert reasons_by_session(wh) == {
        name: [("timestamp", "out_of_range", text)] for name, text in OUT_OF_RANGE.items()
    } | {name: [("timestamp", "not_a_timestamp", text)] for name, text in NOT_A_TIMESTAMP.items()}
    assert sorted(row["session_id"] for row in stored(wh)) == sorted(IN_WINDOW)
    reads_back(wh)


@pytest.mark.parametrize(
    ("naive_timezone", "inside", "outside"),
    [
        ("America/Chicago", "1969-12-31T18:00:00", "1969-12-31T17:59:59"),  # UTC-6
        ("Australia/Sydney", "2100-01-01T10:59:59", "2100-01-01T11:00:00"),  # UTC+11
        ("UTC", "1970-01-01T00:00:00", "0001-01-01T00:00:00"),
    ],
)
def test_a_naive_timestamp_is_in_the_window_by_its_utc_time(
    write: Write, wh: Path, naive_timezone: str, inside: str, outside: str
) -> None:
    path = write(
        "naive.ndjson", ndjson([session(1, timestamp=inside), session(2, timestamp=outside)])
    )
    report = ingest(wh, path, options=("--naive-timezone", naive_timezone))
    assert report["rejected_by_reason"] == {"timestamp: out_of_range": 1}
    assert [row["session_id"] for row in stored(wh)] == ["s1"]


def test_a_csv_export_is_held_to_the_same_window(write: Write, wh: Path) -> None:
    rows = [
        ("s1", "0001-01-01T00:00:00Z"),
        ("s2", "2026-10-01 12:00:00"),
        ("s3", "2100-01-01 00:00"),
    ]
    text = "session_id,timestamp,duration\n" + "".join(f"{i},{t},5\n" for i, t in rows)
    report = ingest(wh, write("console.csv", text.encode()))
    assert report["rejected_by_reason"] == {"timestamp: out_of_range": 2}
    assert [row["session_id"] for row in stored(wh)] == ["s2"]


# --- durations ---------------------------------------------------------------------------

IMPLAUSIBLE = {
    "1e308": "1e308",
    "max-double": "1.7976931348623157e308",
    "beyond-64-bits": "99999999999999999999",
    "a-microsecond-over": "2592000.000001",
    "a-year": "31536000",
    "as-text": '"1e308"',
}
PLAUSIBLE = {
    "thirty-days": ("2592000", 2_592_000.0),
    "subnormal": ("1e-320", 1e-320),
    "negative-zero": ("-0.0", 0.0),
    "zero": ("0", 0.0),
    "null": ("null", None),
}


def test_a_duration_above_thirty_days_is_implausible(write: Write, wh: Path) -> None:
    lines = [
        json.dumps(session(n, session_id=name, duration=0)).replace(
            '"duration": 0', f'"duration": {raw}'
        )
        for n, (name, raw) in enumerate(IMPLAUSIBLE.items())
    ] + [
        json.dumps(session(100 + n, session_id=name, duration=0)).replace(
            '"duration": 0', f'"duration": {raw}'
        )
        for n, (name, (raw, _)) in enumerate(PLAUSIBLE.items())
    ]
    report = ingest(wh, write("durations.ndjson", ndjson(lines)))
    assert report["rejected_by_reason"] == {"duration: implausible": len(IMPLAUSIBLE)}
    assert set(reasons_by_session(wh)) == set(IMPLAUSIBLE)
    assert all(
        reasons == [("duration", "implausible", reasons[0][2])]
        for reasons in reasons_by_session(wh).values()
    )
    durations = {row["session_id"]: row["duration"] for row in stored(wh)}
    assert durations == {name: value for name, (_, value) in PLAUSIBLE.items()}
    assert math.copysign(1.0, durations["negative-zero"]) == 1.0  # not -0.0


def test_the_sum_of_the_longest_durations_stays_finite(write: Write, wh: Path) -> None:
    # `1e308` twice made totals and means `inf`; the most that can be stored now is 30 days.
    export = [session(n, duration=2_592_000, agent_id="agent-x") for n in range(50)]
    export += [session(100, duration=1e308), session(101, duration=1e308)]
    report = ingest(wh, write("long.ndjson", ndjson(export)))
    assert report["rows_rejected"] == 2
    result = run_cli("stats", "-w", wh, "--format", "json", "--all-columns")
    [row] = strict_json(result.stdout)
    assert row["duration_total_s"] == 50 * 2_592_000 and row["duration_mean_s"] == 2_592_000
    assert row["duration_stddev_s"] == 0


# --- identifiers -------------------------------------------------------------------------

SPELLINGS = ["abc", " abc ", "abc\t", "\tabc\n", "\u00a0abc", "abc\u3000", "\u200babc\ufeff"]


def test_ids_padded_with_whitespace_are_one_session(write: Write, wh: Path) -> None:
    # Across lines of a file, across files and formats, and across runs.
    first = write(
        "a.ndjson",
        ndjson([session(n, session_id=s, duration=n) for n, s in enumerate(SPELLINGS[:4])]),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["session_id", "timestamp", "agent_id", "agent_name", "duration"])
    writer.writerow([SPELLINGS[4], "2026-10-02T12:00:00Z", "agent-1\u00a0", "  Agent One ", "7"])
    second = write("b.csv", buffer.getvalue().encode())
    report = ingest(wh, first, second)
    assert report["rows_rejected"] == 0
    assert (report["sessions_new"], report["rows_superseded"]) == (1, 4)
    for n, spelling in enumerate(SPELLINGS[5:]):
        later = write(f"c{n}.ndjson", ndjson([session(9, session_id=spelling, duration=20 + n)]))
        report = ingest(wh, later)
        assert (report["sessions_new"], report["sessions_updated"]) == (0, 1)
    [row] = stored(wh)
    assert (row["session_id"], row["session_key"], row["duration"]) == ("abc", "abc", 21.0)


def test_every_text_field_is_trimmed(write: Write, wh: Path) -> None:
    padded = [
        session(1, agent_id="agent-1", agent_name="Agent One", prompt_id="p1"),
        session(2, agent_id=" agent-1", agent_name="Agent One\u00a0", prompt_id="p1\t"),
        session(3, agent_id="agent-1\n", agent_name="\u2003Agent One", prompt_id=" p1 "),
    ]
    ingest(wh, write("padded.ndjson", ndjson(padded)))
    rows = stored(wh)
    assert {(r["agent_id"], r["agent_name"], r["prompt_id"]) for r in rows} == {
        ("agent-1", "Agent One", "p1")
    }
    result = run_cli("stats", "-w", wh, "--format", "json")
    assert [(r["agent_id"], r["session_count"]) for r in strict_json(result.stdout)] == [
        ("agent-1", 3)
    ]


def test_a_blank_id_is_a_missing_one(write: Write, wh: Path) -> None:
    blanks = ["", " ", "\t\n", "\u00a0", "\u200b", "\ufeff \u3000"]
    records = [session(1, session_id=None, agent_id=None)]
    records += [session(1, session_id=blank, agent_id=blank) for blank in blanks]
    report = ingest(wh, write("blank.ndjson", ndjson(records)))
    assert report["rows_rejected"] == 0
    [row] = stored(wh)  # the same content: one session, keyed by it
    assert row["session_id"] is None and row["agent_id"] is None
    assert row["session_key"].startswith("content:")


def test_control_characters_inside_an_id_are_kept_and_read_back(write: Write, wh: Path) -> None:
    ids = ["abc\u0000def", "abc\u0001", "a\u001fb", "tab\tinside", 'quote"and\\slash']
    ingest(wh, write("odd.ndjson", ndjson([session(n, session_id=s) for n, s in enumerate(ids)])))
    assert sorted(row["session_id"] for row in stored(wh)) == sorted(ids)
    result = run_cli("sql", "-w", wh, "--format", "json", "SELECT session_id FROM sessions")
    assert result.returncode == 0, result.stderr
    assert sorted(row["session_id"] for row in strict_json(result.stdout)) == sorted(ids)
    for fmt in ("table", "csv", "markdown"):
        result = run_cli("sql", "-w", wh, "--format", fmt, "SELECT session_id FROM sessions")
        assert result.returncode == 0, (fmt, result.stderr)


# --- the edges, stored ---------------------------------------------------------------------


def test_a_warehouse_at_the_edges_reads_everywhere(write: Write, wh: Path, tmp_path: Path) -> None:
    edges = [
        session(
            1,
            timestamp="1970-01-01T00:00:00Z",
            duration=2_592_000,
            agent_timezone="America/Chicago",
        ),
        session(2, timestamp="1970-01-01T00:00:00Z", duration=1e-320, agent_timezone="UTC"),
        session(
            3,
            timestamp="2099-12-31T23:59:59Z",
            duration=2_592_000,
            agent_timezone="Australia/Sydney",
        ),
        session(
            4,
            timestamp="2099-12-31T23:59:59.999999Z",
            duration=0,
            agent_timezone="Pacific/Kiritimati",
        ),
        session(5, timestamp="2099-12-31T23:59:59Z", duration=None, agent_timezone="Etc/GMT+12"),
    ]
    report = ingest(wh, write("edges.ndjson", ndjson(edges)))
    assert report["rows_rejected"] == 0
    local_dates = sorted(str(row["local_date"]) for row in stored(wh))
    assert local_dates == ["1969-12-31", "1970-01-01", "2099-12-31", "2100-01-01", "2100-01-01"]
    result = run_cli("stats", "-w", wh, "--by", "day", "--format", "json", "--since", "1969-12-31")
    assert result.returncode == 0, result.stderr
    assert sum(row["session_count"] for row in strict_json(result.stdout)) == 5
    reads_back(wh, tmp_path / "report.html")


def test_a_change_share_over_a_zero_or_tiny_median_is_null_in_json(write: Write, wh: Path) -> None:
    # Stored values are finite, yet a ratio can overflow: a previous version's median of 0
    # (sessions with no measured length) or 1e-320. The JSON output says null, never Infinity.
    # (Fails until pipeline/output.py renders non-finite numbers as null: issue #12.)
    export = []
    for prompt, tiny in (("zero", 0.0), ("subnormal", 1e-320)):
        export += [
            session(n, prompt_id=prompt, prompt_version_number=1, duration=tiny) for n in range(3)
        ]
        export += [
            session(10 + n, prompt_id=prompt, prompt_version_number=2, duration=60)
            for n in range(3)
        ]
    export = [{**r, "session_id": f"{r['prompt_id']}-{i}"} for i, r in enumerate(export)]
    ingest(wh, write("prompts.ndjson", ndjson(export)))
    sql = (
        "SELECT prompt_id, prompt_version_number, duration_p50_change_share "
        "FROM prompt_version_changes"
    )
    result = run_cli("sql", "-w", wh, "--format", "json", sql)
    assert result.returncode == 0, result.stderr
    shares = {
        (r["prompt_id"], r["prompt_version_number"]): r["duration_p50_change_share"]
        for r in strict_json(result.stdout)
    }
    assert shares == {
        ("subnormal", 1): None,
        ("subnormal", 2): None,
        ("zero", 1): None,
        ("zero", 2): None,
    }
