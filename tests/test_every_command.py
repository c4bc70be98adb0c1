"""Whatever ingest stores, every command that reads the warehouse works on it.

A property test: hypothesis builds warehouses from odd but storable values (names with
mathtext, markup, control characters and every kind of Unicode; timestamps at the edges of
the plausible window; huge, tiny and zero durations; extreme integers; unknown timezones;
empty strings) and runs every reading command, in every output format, on each. None may
end in exit 70 (a bug) or print a traceback; JSON output must be strict JSON.

The commands run in-process through click's test runner, so that a hypothesis run of many
warehouses stays within seconds; `test_one_odd_warehouse_through_the_installed_cli` runs the
same commands on one fixed odd warehouse through the installed console script.
"""

from __future__ import annotations

import json
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from tests.conftest import ndjson, run_cli

# Text a user's names may hold: mathtext, markup, CSV and Markdown syntax, control
# characters, bidi overrides, wide and combining characters, whitespace only.
ODD_TEXT = [
    "$$",
    "$x_{$",
    "\\frac{1}{2}",
    "a_b^c",
    "{unbalanced",
    "<script>alert(1)</script>",
    "&amp; \"quoted\" 'single'",
    '12" monitor',
    "a|b,c;d\te",
    "line\nbreak\r\nand\rcr",
    "esc \x1b[31mred\x1b[0m bel \x07",
    "nul \x00 del \x7f c1 \x9b",
    "\u202eevil\u202c",
    "中文名字 \uff57\uff49\uff44\uff45",
    "e\u0301\u0301\u0301",
    "😀🏳️‍🌈",
    " ",
    "x" * 600,
    "NaN",
    "-1e400",
    "null",
]

names = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=30), st.none())
timestamps = st.one_of(
    st.sampled_from(
        [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.000001Z",
            "1970-01-01T00:30:00+01:00",
            "2099-12-31T23:59:59.999999Z",
            "2099-12-31T20:00:00-05:00",
            "2026-03-08T08:30:00Z",  # a DST change in America/Chicago
            "2026-11-01T06:30:00Z",
        ]
    ),
    st.datetimes(
        min_value=__import__("datetime").datetime(1970, 1, 2),
        max_value=__import__("datetime").datetime(2099, 12, 30),
    ).map(lambda d: d.isoformat() + "Z"),
)
durations = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 0.001, 2_592_000.0, 2_591_999.999999]),
    st.floats(min_value=0, max_value=2_592_000, allow_nan=False),
)
big_ints = st.one_of(
    st.none(),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**53 + 1]),
    st.integers(-(2**63), 2**63 - 1),
)
timezones = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "America/Chicago",
            "Australia/Sydney",
            "Pacific/Kiritimati",
            "Etc/GMT+12",
            "Not/AZone",
            "",
            "utc",
            "$$",
        ]
    ),
)
flags = st.one_of(st.none(), st.booleans())


@st.composite
def odd_session(draw: st.DrawFn, n: int) -> dict[str, Any]:
    return {
        "timestamp": draw(timestamps),
        "session_id": draw(st.one_of(st.just(f"s{n}"), names)),
        "agent_id": draw(names),
        "agent_name": draw(names),
        "agent_timezone": draw(timezones),
        "channel_manager_service": draw(names),
        "channel_manager_type": draw(names),
        "prompt_id": draw(names),
        "prompt_name": draw(names),
        "prompt_version_number": draw(big_ints),
        "experiment_id": draw(names),
        "experiment_variant": draw(names),
        "experiment_variant_is_control": draw(flags),
        "duration": draw(durations),
        "source": draw(names),
        "target": draw(names),
        "is_test": draw(flags),
        "is_outbound": draw(flags),
        "user_terminated": draw(flags),
        draw(st.sampled_from(["odd_field", "$$", "a\x1bb", "ünïcode"])): draw(names),
    }


@st.composite
def warehouses(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=12))
    return [draw(odd_session(n)) for n in range(count)]


def _reading_commands(wh: Path, out: Path) -> Iterator[list[str]]:
    """Every reading command, in every output format it has."""
    w = ["--warehouse", str(wh)]
    for by in ("agent", "channel", "prompt-version", "day"):
        for fmt in ("table", "csv", "json", "markdown"):
            yield ["stats", "--by", by, "--format", fmt, *w]
        yield ["stats", "--by", by, "--format", "table", "--all-columns", "--include-tests", *w]
    yield ["stats", "--since", "1970-01-01", "--until", "2099-12-31", "--format", "json", *w]
    for query in (
        "select * from sessions",
        "select * from rejects",
        "select * from prompt_version_changes",
        "select agent_name, local_date, local_time from sessions",
    ):
        for fmt in ("table", "csv", "json", "markdown"):
            yield ["sql", query, "--format", fmt, *w]
    yield ["report", "--out", str(out), *w]
    yield ["report", "--include-tests", "--out", str(out), *w]
    yield ["check", *w]


def _strict_json(text: str) -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    json.loads(text, parse_constant=refuse)


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """The CLI sets its own SIGINT/SIGTERM handlers; pytest's come back afterwards."""
    saved = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def _run_all(records: list[dict[str, Any]], tmp: Path) -> None:
    runner = CliRunner()
    export = tmp / "odd.ndjson"
    export.write_bytes(ndjson(records))
    wh = tmp / "wh"
    result = runner.invoke(main, ["ingest", str(export), "--warehouse", str(wh), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_read"] == report["rows_accepted"] + report["rows_rejected"]
    for args in _reading_commands(wh, tmp / "out" / "report.html"):
        result = runner.invoke(main, args)
        where = f"sessions {' '.join(args[:-2])!r}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{where}: {result.exception!r}"
        )
        assert result.exit_code == 0, f"{where}: exit {result.exit_code}: {result.stderr}"
        assert "Traceback" not in result.output
        if "json" in args:
            _strict_json(result.stdout)


@settings(
    # 6 random warehouses a run (each runs every reading command, ~12 s): a fresh clone in CI
    # draws new ones every run; 12 a run kept `make test` over 15 minutes on a slow machine.
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(records=warehouses())
def test_every_reading_command_works_on_whatever_ingest_stored(
    records: list[dict[str, Any]], signals_restored: None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run_all(records, Path(tmp))


def test_one_odd_warehouse_through_the_installed_cli(tmp_path: Path) -> None:
    records = [
        {
            "timestamp": ts,
            "session_id": f"s{n}",
            "agent_id": text,
            "agent_name": text,
            "channel_manager_type": text,
            "prompt_id": text,
            "prompt_name": text,
            "prompt_version_number": n,
            "agent_timezone": "Not/AZone" if n % 2 else "America/Chicago",
            "duration": duration,
        }
        for n, (text, ts, duration) in enumerate(
            zip(
                ODD_TEXT,
                [
                    "1970-01-01T00:00:00Z",
                    "2099-12-31T23:59:59.999999Z",
                    "2026-03-08T08:30:00Z",
                ]
                * 7,
                [0.0, 5e-324, 2_592_000.0, None, 1.5, 1e-300, 60.0] * 3,
                strict=True,
            )
        )
    ]
    export = tmp_path / "odd.ndjson"
    export.write_bytes(ndjson(records))
    wh = tmp_path / "wh"
    result = run_cli("ingest", export, "--warehouse", wh)
    assert result.returncode == 0, result.stderr
    for args in _reading_commands(wh, tmp_path / "report.html"):
        result = run_cli(*args)
        assert result.returncode == 0, f"{args[:-2]}: {result.stderr}"
        assert "Traceback" not in result.stderr
        if "json" in args:
            _strict_json(result.stdout)
        if "table" in args or "markdown" in args:
            # Control characters never reach the terminal raw.
            assert "\x1b" not in result.stdout and "\x07" not in result.stdout
