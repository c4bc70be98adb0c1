"""Strict typing in SQL: the values whose reading cannot be in doubt, typed by DuckDB.

The transform (`pipeline.transform.parse`, polars) reads every layout an export may use, with
a reason for each value it cannot read. Most values are in the one layout the API writes
(`2026-09-20T10:00:04.582Z`, `82.862`, `true`); for those, reading them in the query that
parses the JSON costs a fraction of handing their text to polars. This module types a value
only where the text is in that layout, and says so: every other value (another layout, a
blank at an end, a value that does not parse) leaves its row to the transform, which
decides as it always has. So a value is never typed two ways: either both readers give the
same value (tests/read/test_strict.py checks it against the transform), or this one
declines.
"""

from __future__ import annotations

from pipeline.transform import BLANK
from schemas import MAX_DURATION_S, SESSION_FIELDS, TIMESTAMP_WINDOW, Field, Kind

# The layouts taken here, each a full match. A timestamp: the API's own (UTC, `Z`, up to
# microseconds; hours up to 23 and seconds up to 59, which every parser agrees on). An
# integer that fits BIGINT. A decimal number, exponent allowed; its value is the correctly
# rounded double in DuckDB and polars alike.
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z"
_INTEGER = r"-?[0-9]{1,18}"
_NUMBER = r"-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def text(value: str, suspect: str) -> str:
    """SQL for a field's text as the transform sees it: BLANK trimmed from both ends, null
    where nothing is left. `suspect` is SQL true where a value may start or end with a blank;
    only there is the costly trim run (a trim with BLANK's set costs a second a million rows
    a field)."""
    return f"nullif(CASE WHEN {suspect} THEN trim({value}, {_literal(BLANK)}) ELSE {value} END, '')"


def typed(field: Field, text_sql: str) -> tuple[str, str | None]:
    """SQL for the field's value and SQL true where that value is certain (None: always).

    Where it is not certain, the value is not used: the row goes to the transform.
    """
    if field.kind is Kind.STRING:
        return text_sql, None
    if field.kind is Kind.TIMESTAMP:
        start, end = (t.strftime("%Y-%m-%d %H:%M:%S+00") for t in TIMESTAMP_WINDOW)
        value = f"TRY_CAST({text_sql} AS TIMESTAMPTZ)"
        # Outside the window the transform gives the reason (`out_of_range`).
        sure = (
            f"({text_sql} IS NULL OR (regexp_full_match({text_sql}, {_literal(_TIMESTAMP)})"
            f" AND {value} >= TIMESTAMPTZ '{start}' AND {value} < TIMESTAMPTZ '{end}'))"
        )
        return value, sure
    if field.kind is Kind.INT:
        sure = f"({text_sql} IS NULL OR regexp_full_match({text_sql}, {_literal(_INTEGER)}))"
        return f"TRY_CAST({text_sql} AS BIGINT)", sure
    if field.kind is Kind.FLOAT:
        number = f"TRY_CAST({text_sql} AS DOUBLE)"
        sure = (
            f"({text_sql} IS NULL OR (regexp_full_match({text_sql}, {_literal(_NUMBER)})"
            f" AND isfinite({number})))"
        )
        if field.name == "duration":
            # The schema's rules for a duration, so that a value it rejects goes the exact way
            # (which keeps its record for the quarantine); Pandera still decides.
            sure = sure[:-1] + f" AND {number} >= 0 AND {number} <= {MAX_DURATION_S})"
        # -0.0 is stored as 0.0, as the transform does (see `parse_float`).
        return f"CASE WHEN {number} = 0 THEN 0.0::DOUBLE ELSE {number} END", sure
    if field.kind is Kind.BOOL:
        return f"{text_sql} = 'true'", f"({text_sql} IS NULL OR {text_sql} IN ('true', 'false'))"
    raise AssertionError(f"no strict reading for {field.kind}")


def columns(values: dict[str, str], suspect: str) -> tuple[list[str], str]:
    """The SELECT list of typed session fields from `values` (field name -> SQL of its text,
    absent where the export has no such key), and SQL true where every value is certain."""
    selected: list[str] = []
    sure: list[str] = []
    for field in SESSION_FIELDS:
        raw = values.get(field.name)
        if raw is None:
            selected.append(f'NULL::{field.duckdb_type} AS "{field.name}"')
            if not field.nullable:
                sure.append("false")
            continue
        value, certain = typed(field, f'"{_TEXT}{field.name}"')
        selected.append(f'{value} AS "{field.name}"')
        if certain is not None:
            sure.append(certain)
        if not field.nullable:
            # A missing value is the schema's to reject (see `certain` of a duration).
            sure.append(f'"{_TEXT}{field.name}" IS NOT NULL')
    return selected, " AND ".join(sure) or "true"


def texts(values: dict[str, str], suspect: str, *, starts: bool = False) -> list[str]:
    """The SELECT list of each field's text, trimmed (see `text`), named for `columns`.

    `starts`: a value is suspect also where its own first character is a blank or a control
    character (every blank outside ASCII is a character `suspect` must see elsewhere)."""
    return [
        f"{text(sql, f'({suspect} OR ascii({sql}) <= 32)' if starts else suspect)}"
        f' AS "{_TEXT}{name}"'
        for name, sql in values.items()
    ]


# The prefix of the columns that hold a field's trimmed text between the two SELECTs.
_TEXT = "text:"
