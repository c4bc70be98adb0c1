"""Pure polars transformations: raw text columns to typed session columns, with reasons.

Parsing lives here; value rules (no negative duration, a timestamp present, ...) live in the
Pandera schema, which `validate` applies after this. One rule of the schema is applied here
too: a timestamp outside its window is rejected before validation (see `parse`).
"""

from __future__ import annotations

import polars as pl

from schemas import SESSION_FIELDS, Field, Kind, in_window, key_aliases, repeated_fields

REASON = pl.Struct({"field": pl.String, "rule": pl.String, "value": pl.String})

# ISO 8601 as exports write it: `T` or a space, seconds and fraction optional, `Z` or an
# offset (`+02:00`, `+0200`), or nothing: then the timestamp is read in the naive timezone.
_WITH_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

# What is trimmed from both ends of every value before it is read: Unicode's White_Space, and
# the invisible characters a copy and paste brings along (Mongolian vowel separator, zero-width
# space, word joiner, byte order mark). Inside a value nothing is changed.
BLANK = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\u2060\ufeff"
)

_RULE_BY_KIND = {
    Kind.TIMESTAMP: "not_a_timestamp",
    Kind.INT: "not_an_integer",
    Kind.FLOAT: "not_a_number",
    Kind.BOOL: "not_a_boolean",
}


def parse_timestamp(text: pl.Expr, naive_timezone: str = "UTC") -> pl.Expr:
    """ISO 8601 text to a UTC datetime; null where the text is not a timestamp.

    As RFC 3339 allows, `t` and `z` may be lower case; as ISO 8601 allows, an offset may be
    hours only (`+05`). A second of 60 is a leap second only at 23:59:60 UTC: it is read as
    the last microsecond of its day (a datetime has no 61st second), and anywhere else it is
    not a time (polars read `10:30:60` as 10:31:00)."""
    iso = (
        text.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[ t]", "${1}T")
        .str.replace(r"[zZ]$", "+00:00")
        .str.replace(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?[+-]\d{2})$", "${1}:00")
    )
    leap = iso.str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:60(?:\.\d+)?(?:[+-]|$)")
    # The leap second's text with its second as 59 and no fraction: read as the second
    # before, then moved to that second's last microsecond.
    iso = pl.when(leap).then(iso.str.replace(r":60(?:\.\d+)?", ":59")).otherwise(iso)
    with_offset = [
        iso.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        for fmt in _WITH_OFFSET
    ]
    # The naive layouts read first, then placed in the timezone once (one DuckDB pass).
    naive = _in_timezone(
        pl.coalesce(*[iso.str.to_datetime(fmt, time_unit="us", strict=False) for fmt in _NAIVE]),
        naive_timezone,
    )
    read = pl.coalesce(*with_offset, naive)
    at_leap = (read.dt.hour() == 23) & (read.dt.minute() == 59) & (read.dt.second() == 59)
    return (
        pl.when(~leap)
        .then(read)
        .when(at_leap)
        .then(read + pl.duration(microseconds=999_999))
        .otherwise(None)
    )


def _in_timezone(local: pl.Expr, timezone: str) -> pl.Expr:
    """Naive local times in `timezone` as UTC: null where the time does not exist there (a
    clock moved forward over it), the earlier instant where it exists twice.

    By DuckDB's rules, not polars': the local dates and times the warehouse stores are
    DuckDB's, and polars' compiled-in rules lag (in 2026 they still moved Vancouver's clocks
    back in November, which the current rules no longer do: a naive 23:30 came back as the
    next day's 00:30)."""
    if timezone == "UTC":
        return local.dt.replace_time_zone("UTC")
    return local.map_batches(
        lambda times: _duckdb_in_timezone(times, timezone),
        return_dtype=pl.Datetime("us", "UTC"),
    )


# DuckDB's reading of a naive time in a zone takes the later of two instants a repeated
# wall time has; the earlier is one of these before it (the clock changes the zones use).
_SHIFTS = ("30 MINUTES", "1 HOUR", "2 HOURS")


def _duckdb_in_timezone(times: pl.Series, timezone: str) -> pl.Series:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        frame = pl.DataFrame({"t": times}).to_arrow()  # noqa: F841 (read by the query)
        zone = "'" + timezone.replace("'", "''") + "'"
        # The earliest instant whose local time is `t`, of DuckDB's `u` and those before it.
        earlier = " ".join(
            f"WHEN timezone({zone}, u - INTERVAL {shift}) = t THEN u - INTERVAL {shift}"
            for shift in reversed(_SHIFTS)
        )
        result = con.sql(f"""
            SELECT CASE WHEN timezone({zone}, u) = t THEN CASE {earlier} ELSE u END END AS t
            FROM (SELECT t, timezone({zone}, t) AS u FROM frame)
        """).to_arrow_table()
    finally:
        con.close()
    out = pl.from_arrow(result)
    assert isinstance(out, pl.DataFrame)
    return out["t"].cast(pl.Datetime("us", "UTC")).alias(times.name)


def parse_timestamp_as_exported(text: pl.Expr) -> pl.Expr:
    """The one layout the API and the SDK write (`2026-09-20T10:00:04.582Z`), in one pass;
    null for any other text, which `parse_timestamp` reads."""
    return text.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", time_zone="UTC", strict=False
    )


def parse_integer(text: pl.Expr) -> pl.Expr:
    """Integer text to Int64; a whole number written as a float (`3.0`) counts as one."""
    stripped = text.str.strip_chars()
    as_float = stripped.cast(pl.Float64, strict=False)
    whole = as_float.is_finite() & (as_float == as_float.floor()) & (as_float.abs() < 2.0**53)
    return pl.coalesce(
        stripped.cast(pl.Int64, strict=False),
        pl.when(whole).then(as_float).cast(pl.Int64, strict=False),
    )


def parse_float(text: pl.Expr) -> pl.Expr:
    """Number text to Float64; `NaN` and `Infinity` parse, and the schema rejects them.
    `-0.0` is zero: stored as 0.0, so that it neither prints as `-0` nor hashes apart."""
    # -0.0 equals 0.0, so both become +0.0.
    return text.str.strip_chars().cast(pl.Float64, strict=False).replace(-0.0, 0.0)


def trimmed(text: pl.Expr) -> pl.Expr:
    """`text` without BLANK at either end; null where nothing is left (` abc ` is `abc`, and
    a blank identifier is a missing one)."""
    return text.str.strip_chars(BLANK).replace("", None)


def parse_boolean(text: pl.Expr) -> pl.Expr:
    """`true`/`false` in any case, or `1`/`0`, to a boolean."""
    return (
        text.str.strip_chars()
        .str.to_lowercase()
        .replace_strict(_BOOLEANS, default=None, return_dtype=pl.Boolean)
    )


def _typed(field: Field, text: pl.Expr) -> pl.Expr:
    # Timestamps are not here: `parse` reads them a batch at a time (see there).
    if field.kind is Kind.INT:
        return parse_integer(text)
    if field.kind is Kind.FLOAT:
        return parse_float(text)
    if field.kind is Kind.BOOL:
        return parse_boolean(text)
    return text


def _reason(field: str | pl.Expr, rule: str | pl.Expr, value: pl.Expr) -> pl.Expr:
    as_expr = [pl.lit(x) if isinstance(x, str) else x for x in (field, rule)]
    return pl.struct(
        as_expr[0].cast(pl.String).alias("field"),
        as_expr[1].cast(pl.String).alias("rule"),
        value.cast(pl.String).alias("value"),
    )


def _repeats_a_key(raw: pl.DataFrame) -> bool:
    """Whether some record of `raw` gives a field twice: repeats a key, or uses both spellings
    of one. A batch has few distinct lists of keys (an export writes its keys alike), so
    each list is looked at once."""
    lists = raw["_keys"].drop_nulls().unique()
    if len(lists) > 1_000:
        return True  # so many that each record is looked at instead
    return any(repeated_fields(keys) for keys in lists.to_list())


def _duplicate_keys() -> pl.Expr:
    """The keys a JSON object has twice, counting snake_case and camelCase as one."""
    aliases = key_aliases()
    canonical = pl.element().replace(aliases)
    return (
        pl.col("_keys")
        .list.eval(canonical.filter(canonical.is_duplicated()).unique(maintain_order=True))
        .list.join(", ")
    )


def parse(raw: pl.DataFrame, naive_timezone: str = "UTC") -> pl.DataFrame:
    """Type the text columns of `raw`, as readers yield it.

    Every value is `trimmed` first. Every row stays: a value that does not parse becomes null,
    and the row gains a reason in `_reasons` (field, rule, value as trimmed). So do rows a
    reader could not read, and JSON objects with a key given twice, and timestamps outside the
    schema's window (`out_of_range`): those are nulled here, before pandera sees them, since
    pandera turns failing values into Python datetimes, which end at years 1 and 9999.
    """
    # Trimmed once, in place: each text is read by several expressions below.
    raw = raw.with_columns(trimmed(pl.col(f.name)).alias(f.name) for f in SESSION_FIELDS)
    texts = {f.name: pl.col(f.name) for f in SESSION_FIELDS}
    typed = {f.name: f"{f.name}.typed" for f in SESSION_FIELDS}

    def unread(name: str) -> pl.Expr:
        """Text was there, and no value came of it."""
        return texts[name].is_not_null() & pl.col(typed[name]).is_null()

    unparsed = [
        pl.when(unread(f.name)).then(_reason(f.name, _RULE_BY_KIND[f.kind], texts[f.name]))
        for f in SESSION_FIELDS
        if f.kind in _RULE_BY_KIND
    ]
    timestamps = [f.name for f in SESSION_FIELDS if f.kind is Kind.TIMESTAMP]
    outside = [
        pl.when(pl.col(typed[name]).is_not_null() & ~in_window(pl.col(typed[name]))).then(
            _reason(name, "out_of_range", texts[name])
        )
        for name in timestamps
    ]
    # The check of each record costs as much as all the parsing; most batches need not run it.
    duplicates = _duplicate_keys() if _repeats_a_key(raw) else pl.lit("")
    reasons = [
        pl.when(pl.col("_error").is_not_null()).then(
            _reason(pl.lit(None), pl.col("_error"), pl.col("_error_detail"))
        ),
        pl.when(duplicates != "").then(_reason(duplicates, "duplicate_key", pl.lit(None))),
        *unparsed,
        *outside,
    ]
    # Timestamps in the exported layout first; every other layout (several parses and two
    # regular expressions per row) only for a batch that has one.
    first = raw.with_columns(
        parse_timestamp_as_exported(texts[name]).alias(typed[name]) for name in timestamps
    )
    other_layouts = [name for name in timestamps if first.select(unread(name).any()).item()]
    return (
        first.with_columns(
            pl.coalesce(typed[name], parse_timestamp(texts[name], naive_timezone)).alias(
                typed[name]
            )
            for name in other_layouts
        )
        .with_columns(
            _typed(f, texts[f.name]).alias(typed[f.name])
            for f in SESSION_FIELDS
            if f.kind is not Kind.TIMESTAMP
        )
        .with_columns(
            pl.concat_list(reasons).list.drop_nulls().cast(pl.List(REASON)).alias("_reasons")
        )
        .with_columns(
            pl.when(in_window(pl.col(typed[name]))).then(pl.col(typed[name])).alias(typed[name])
            for name in timestamps
        )
        .drop(typed.keys())
        .rename({tmp: name for name, tmp in typed.items()})
    )
