"""Pure polars transformations: raw text columns to typed session columns, with reasons.

Parsing lives here; value rules (no negative duration, a timestamp present, ...) live in the
Pandera schema, which `validate` applies after this.
"""

from __future__ import annotations

import polars as pl

from schemas import SESSION_FIELDS, Field, Kind, key_aliases, repeated_fields

REASON = pl.Struct({"field": pl.String, "rule": pl.String, "value": pl.String})

# ISO 8601 as exports write it: `T` or a space, seconds and fraction optional, `Z` or an
# offset (`+02:00`, `+0200`), or nothing: then the timestamp is read in the naive timezone.
_WITH_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

_RULE_BY_KIND = {
    Kind.TIMESTAMP: "not_a_timestamp",
    Kind.INT: "not_an_integer",
    Kind.FLOAT: "not_a_number",
    Kind.BOOL: "not_a_boolean",
}


def parse_timestamp(text: pl.Expr, naive_timezone: str = "UTC") -> pl.Expr:
    """ISO 8601 text to a UTC datetime; null where the text is not a timestamp."""
    iso = (
        text.str.strip_chars()
        .str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
        .str.replace(r"[zZ]$", "+00:00")
    )
    with_offset = [
        iso.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        for fmt in _WITH_OFFSET
    ]
    naive = [
        iso.str.to_datetime(fmt, time_unit="us", strict=False)
        .dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        for fmt in _NAIVE
    ]
    return pl.coalesce(*with_offset, *naive)


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
    """Number text to Float64; `NaN` and `Infinity` parse, and the schema rejects them."""
    return text.str.strip_chars().cast(pl.Float64, strict=False)


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

    Every row stays: a value that does not parse becomes null, and the row gains a reason in
    `_reasons` (field, rule, value as received). So do rows a reader could not read, and JSON
    objects with a key given twice.
    """
    texts = {f.name: pl.col(f.name).replace("", None) for f in SESSION_FIELDS}
    typed = {f.name: f"{f.name}.typed" for f in SESSION_FIELDS}

    def unread(name: str) -> pl.Expr:
        """Text was there, and no value came of it."""
        return texts[name].is_not_null() & pl.col(typed[name]).is_null()

    unparsed = [
        pl.when(unread(f.name)).then(_reason(f.name, _RULE_BY_KIND[f.kind], texts[f.name]))
        for f in SESSION_FIELDS
        if f.kind in _RULE_BY_KIND
    ]
    # The check of each record costs as much as all the parsing; most batches need not run it.
    duplicates = _duplicate_keys() if _repeats_a_key(raw) else pl.lit("")
    reasons = [
        pl.when(pl.col("_error").is_not_null()).then(
            _reason(pl.lit(None), pl.col("_error"), pl.col("_error_detail"))
        ),
        pl.when(duplicates != "").then(_reason(duplicates, "duplicate_key", pl.lit(None))),
        *unparsed,
    ]
    # Timestamps in the exported layout first; every other layout (several parses and two
    # regular expressions per row) only for a batch that has one.
    timestamps = [f.name for f in SESSION_FIELDS if f.kind is Kind.TIMESTAMP]
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
        .drop(typed.keys())
        .rename({tmp: name for name, tmp in typed.items()})
    )
