"""Parsing text into typed values: what is accepted, and what becomes a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from pipeline.transform import (
    parse_boolean,
    parse_float,
    parse_integer,
    parse_timestamp,
    parse_timestamp_as_exported,
)


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
