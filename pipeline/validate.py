"""Validate parsed sessions with the Pandera schema and turn its failures into reasons."""

from __future__ import annotations

from functools import cache

import polars as pl

from pipeline.transform import REASON
from schemas import FIELD_NAMES, pandera_schema
from schemas.pandera_import import pa

# Pandera's name of a failed check -> our rule name.
_RULES = {
    "not_nullable": "missing",
    "greater_than_or_equal_to(0)": "negative",
}


@cache
def _schema() -> pa.DataFrameSchema:
    return pandera_schema()


def validate(parsed: pl.DataFrame) -> pl.DataFrame:
    """`parsed` with the schema's failures added to `_reasons`.

    The frame is validated collected, not lazy, so that every value check runs; `lazy=True`
    reports every failure at once instead of the first. Rows a reader could not read are
    not sessions and are not validated.
    """
    if parsed["_error"].null_count() == len(parsed):
        # Every row readable (almost every batch): validated as it is, without a copy.
        try:
            _schema().validate(parsed.select(FIELD_NAMES), lazy=True)
            return parsed
        except pa.errors.SchemaErrors:
            pass  # found again below, with each failure's row
    readable = parsed.with_row_index("_row").filter(pl.col("_error").is_null())
    try:
        _schema().validate(readable.select(FIELD_NAMES), lazy=True)
        return parsed
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    if failures["index"].is_null().any():
        # A failure of the frame as a whole (a missing column, a wrong type) is our bug.
        raise AssertionError(f"the parsed batch does not fit the schema:\n{failures}")
    already = (
        parsed.with_row_index("_row")
        .select("_row", pl.col("_reasons").list.eval(pl.element().struct.field("field")))
        .explode("_reasons")
        .rename({"_reasons": "field"})
    )
    found = (
        failures.select(
            pl.col("index").cast(pl.UInt32).alias("_position"),
            pl.col("column").alias("field"),
            pl.col("check").replace(_RULES).alias("rule"),
            pl.col("failure_case").alias("value"),
        )
        .join(readable.select("_row").with_row_index("_position"), on="_position")
        .join(already.drop_nulls(), on=["_row", "field"], how="anti")
        .group_by("_row")
        .agg(pl.struct("field", "rule", "value").cast(REASON).alias("_found"))
    )
    return (
        parsed.with_row_index("_row")
        .join(found, on="_row", how="left")
        .with_columns(
            pl.concat_list("_reasons", pl.col("_found").fill_null(pl.lit([], pl.List(REASON))))
        )
        .drop("_row", "_found")
    )
