"""Parsing text into typed values: what is accepted, and what becomes a reason."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import duckdb
import polars as pl
import pytest

from pipeline.transform import (
    parse,
    parse_boolean,
    parse_float,
    parse_integer,
    parse_timestamp,
    parse_timestamp_as_exported,
    trimmed,
)
from pipeline.validate import validate
from schemas import FIELD_NAMES


def parsed(expr: pl.Expr, values: list[str | None]) -> list[object]:
    return pl.DataFrame({"v": values}, schema={"v": pl.String}).select(expr)["v"].to_list()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-01T12:30:00Z", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01T12:30:00.123456z", utc(2026, 10, 1, 12, 30, 0, 123456)),
        ("2026-10-01T12:30:00.123456789Z", utc(2026, 10, 1, 12, 30, 0, 123456)),
        ("2026-10-01T14:30:00+02:00", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01T07:00:00-0530", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01 12:30:00+00:00", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01T12:30Z", utc(2026, 10, 1, 12, 30)),
        # RFC 3339's lower case, ISO 8601's offset of hours only.
        ("2026-10-01t12:30:00z", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01T17:30:00+05", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01T07:30-05", utc(2026, 10, 1, 12, 30)),
        # A leap second, in UTC or any offset: the last microsecond of its day, not the next
        # day's first second; a second of 60 elsewhere is no time at all.
        ("2016-12-31T23:59:60Z", utc(2016, 12, 31, 23, 59, 59, 999999)),
        ("2016-12-31T18:59:60.25-05:00", utc(2016, 12, 31, 23, 59, 59, 999999)),
        ("2026-10-01T12:30:60Z", None),
        ("2026-10-01T12:30:61Z", None),
        ("2026-10-01T12:30:00", utc(2026, 10, 1, 12, 30)),  # naive: UTC by default
        (" 2026-10-01T12:30:00Z ", utc(2026, 10, 1, 12, 30)),
        ("2026-10-01", None),  # no time of day: not a session timestamp
        ("1759321800", None),  # epoch seconds are not ISO 8601
        ("2026-13-01T00:00:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_timestamps(text: str | None, expected: datetime | None) -> None:
    assert parsed(parse_timestamp(pl.col("v")), [text]) == [expected]


def test_the_exported_layout_reads_as_the_full_parser_does() -> None:
    # The one-pass reading of the usual layout must agree wherever it reads anything.
    texts = [
        "2026-10-01T12:30:00Z",
        "2026-10-01T12:30:00.5Z",
        "2026-10-01T12:30:00.123456789Z",
        "2026-03-08T08:00:00Z",
        "2026-10-01T14:30:00+02:00",
        "2026-10-01T12:30:00",
        " 2026-10-01T12:30:00Z ",
        "2026-13-01T00:00:00Z",
    ]
    fast = parsed(parse_timestamp_as_exported(pl.col("v")), texts)
    full = parsed(parse_timestamp(pl.col("v"), "America/Chicago"), texts)
    assert fast[:4] == full[:4] and all(v is not None for v in fast[:4])
    assert fast[4:] == [None] * 4  # left to the full parser


def test_naive_timestamps_in_another_timezone() -> None:
    naive = parse_timestamp(pl.col("v"), "America/Chicago")
    assert parsed(naive, ["2026-10-01T07:30:00", "2026-10-01T12:30:00Z"]) == [
        utc(2026, 10, 1, 12, 30),  # CDT is UTC-5
        utc(2026, 10, 1, 12, 30),  # an explicit offset wins
    ]


@pytest.mark.parametrize(
    ("zone", "text", "expected"),
    [
        # The current rules (2026f): Vancouver keeps -07 from November 2026; polars' own rules
        # moved its clocks back, and a naive 23:30 became the next day's 00:30 locally.
        ("America/Vancouver", "2026-11-03T23:30:00", utc(2026, 11, 4, 6, 30)),
        ("America/New_York", "2026-03-08T02:30:00", None),  # skipped by the clocks
        ("America/New_York", "2026-11-01T01:30:00", utc(2026, 11, 1, 5, 30)),  # twice: earlier
        ("Australia/Lord_Howe", "2026-04-05T01:45:00", utc(2026, 4, 4, 14, 45)),  # half hours
    ],
)
def test_naive_times_are_read_by_the_rules_of_the_local_dates(
    zone: str, text: str, expected: datetime | None
) -> None:
    """A naive time read in a zone is the instant whose local time there, as the warehouse
    computes local times (DuckDB), is that time."""
    (got,) = parsed(parse_timestamp(pl.col("v"), zone), [text])
    assert got == expected
    if expected is not None:
        local = duckdb.sql(
            f"SELECT timezone('{zone}', TIMESTAMPTZ '{expected.isoformat()}')"
        ).fetchall()[0][0]
        assert local == datetime.fromisoformat(text)


def test_numbers() -> None:
    values = ["12.5", " 3 ", "NaN", "Infinity", "-0.0", "1e3", "abc", "1,5", ""]
    result = parsed(parse_float(pl.col("v")), values)
    assert result[:2] == [12.5, 3.0]
    assert result[2] != result[2]  # NaN parses; the schema rejects it
    assert result[3:6] == [float("inf"), -0.0, 1000.0]
    assert result[6:] == [None, None, None]


def test_integers() -> None:
    values = ["12", "-3", "4.0", "4.5", "1e2", "99999999999999999999", "x", "true"]
    assert parsed(parse_integer(pl.col("v")), values) == [12, -3, 4, None, 100, None, None, None]


def test_booleans() -> None:
    values = ["true", "TRUE", "False", "1", "0", " true ", "yes", "t", "2"]
    expected = [True, True, False, True, False, True, None, None, None]
    assert parsed(parse_boolean(pl.col("v")), values) == expected


def raw(**columns: list[str | None]) -> pl.DataFrame:
    """A batch as readers yield it: every field as text (null where not given)."""
    rows = len(next(iter(columns.values())))
    return pl.DataFrame(
        {name: columns.get(name, [None] * rows) for name in FIELD_NAMES},
        schema=dict.fromkeys(FIELD_NAMES, pl.String),
    ).with_columns(
        pl.lit(None, pl.String).alias("_error"),
        pl.lit(None, pl.String).alias("_error_detail"),
        pl.lit(None, pl.List(pl.String)).alias("_keys"),
    )


def reasons(frame: pl.DataFrame) -> list[list[tuple[str, str, str | None]]]:
    return [[(r["field"], r["rule"], r["value"]) for r in row] for row in frame["_reasons"]]


def test_negative_zero_is_stored_as_zero() -> None:
    [value] = parsed(parse_float(pl.col("v")), ["-0.0"])
    assert value == 0.0 and math.copysign(1.0, value) == 1.0  # type: ignore[arg-type]
    assert parsed(parse_float(pl.col("v")), ["-0", "0e5", "-1e-320"]) == [0.0, 0.0, -1e-320]


BLANKS = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u200b", "\ufeff", "\u2060"]


@pytest.mark.parametrize("blank", BLANKS)
def test_values_are_trimmed_and_a_blank_value_is_null(blank: str) -> None:
    texts = [f"{blank}abc", f"abc{blank}", f"{blank}abc{blank}{blank}", blank, blank * 3, "abc"]
    assert parsed(trimmed(pl.col("v")), texts) == ["abc", "abc", "abc", None, None, "abc"]


def test_trimming_keeps_what_is_inside_a_value() -> None:
    texts = ["a b", "a\tb", "abc\x00def", "\x00abc", "Agent\u00a0One", "", None]
    assert parsed(trimmed(pl.col("v")), texts) == [*texts[:5], None, None]


def test_every_text_field_is_trimmed_and_blank_ones_are_missing() -> None:
    batch = raw(
        timestamp=["2026-10-01T12:30:00Z "] * 4,
        session_id=[" abc ", "abc\t", "\u00a0abc\u200b", " \t "],
        agent_name=[" Agent One", "Agent One\n", "Agent One", ""],
        duration=[" 12.5", "\t1", None, " "],
        is_test=[" true ", "false\u00a0", None, "\u3000"],
    )
    out = parse(batch)
    assert out["session_id"].to_list() == ["abc", "abc", "abc", None]
    assert out["agent_name"].to_list() == ["Agent One"] * 3 + [None]
    assert out["duration"].to_list() == [12.5, 1.0, None, None]
    assert out["is_test"].to_list() == [True, False, None, None]
    assert out["timestamp"].to_list() == [utc(2026, 10, 1, 12, 30)] * 4
    assert reasons(out) == [[]] * 4


OUT_OF_RANGE = [
    "0001-01-01T00:00:00Z",  # Go's zero time
    "0000-01-01T00:00:00Z",  # year 0: not a Python date at all
    "-0001-01-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00Z",
    "1970-01-01T00:30:00+01:00",  # 1969-12-31T23:30Z
    "2099-12-31T23:30:00-01:00",  # 2100-01-01T00:30Z
    "0001-01-01 00:00:00",
]


@pytest.mark.parametrize("text", OUT_OF_RANGE)
def test_a_timestamp_outside_the_window_is_out_of_range(text: str) -> None:
    out = validate(parse(raw(timestamp=[text, "2026-10-01T12:30:00Z"])))
    assert out["timestamp"].to_list() == [None, utc(2026, 10, 1, 12, 30)]
    assert reasons(out) == [[("timestamp", "out_of_range", text)], []]


@pytest.mark.parametrize(
    "text",
    [
        "10000-01-01T00:00:00Z",
        "+262144-01-01T00:00:00Z",
        "999999999-01-01T00:00:00Z",
        "0000-00-00T00:00:00Z",
    ],
)
def test_a_timestamp_polars_cannot_hold_is_not_a_timestamp(text: str) -> None:
    out = validate(parse(raw(timestamp=[text])))
    assert reasons(out) == [[("timestamp", "not_a_timestamp", text)]]


@pytest.mark.parametrize(
    ("text", "naive_timezone", "expected"),
    [
        ("1970-01-01T00:00:00Z", "UTC", utc(1970, 1, 1)),
        ("1970-01-01T00:00:00", "UTC", utc(1970, 1, 1)),
        ("1970-01-01T01:00:00+01:00", "UTC", utc(1970, 1, 1)),
        ("1969-12-31T18:00:00", "America/Chicago", utc(1970, 1, 1)),  # CST is UTC-6
        ("2099-12-31T23:59:59.999999Z", "UTC", utc(2099, 12, 31, 23, 59, 59, 999999)),
        ("2100-01-01T10:59:59+11:00", "UTC", utc(2099, 12, 31, 23, 59, 59)),
        ("2100-01-01T10:59:59", "Australia/Sydney", utc(2099, 12, 31, 23, 59, 59)),
    ],
)
def test_the_edges_of_the_window_are_inside(
    text: str, naive_timezone: str, expected: datetime
) -> None:
    out = validate(parse(raw(timestamp=[text]), naive_timezone))
    assert out["timestamp"].to_list() == [expected]
    assert reasons(out) == [[]]


@pytest.mark.parametrize(
    ("text", "naive_timezone"),
    [
        ("1969-12-31T17:59:59", "America/Chicago"),
        ("2100-01-01T11:00:00", "Australia/Sydney"),
        ("0001-01-01T00:00:00", "Pacific/Kiritimati"),
    ],
)
def test_a_naive_timestamp_is_in_the_window_by_its_utc_time(text: str, naive_timezone: str) -> None:
    out = validate(parse(raw(timestamp=[text]), naive_timezone))
    assert reasons(out) == [[("timestamp", "out_of_range", text)]]
