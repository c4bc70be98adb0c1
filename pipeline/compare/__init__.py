"""`sessions compare`: did a prompt change or an experiment variant make sessions shorter?

samples.py reads what to compare from the views (the .sql files beside it), statistics.py
measures each pair, verdict.py calls it, rows.py lays the rows out; `compare` puts them
together for the command, the report and the notebook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.compare.rows import COLUMNS, SCHEMA, Pair, Settings, table
from pipeline.compare.samples import BEFORE_AFTER, CompareError
from pipeline.scope import Scope

__all__ = [
    "BEFORE_AFTER",
    "COLUMNS",
    "SCHEMA",
    "CompareError",
    "Pair",
    "Settings",
    "compare",
    "pairs",
    "table",
]


def pairs(
    con: duckdb.DuckDBPyConnection,
    by: str,
    scope: Scope,
    *,
    window_days: int | None = None,
    expected_split: Sequence[float] | None = None,
    experiment_id: str | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> list[Pair]:
    """The samples to compare of `by` ("prompt-version" or "experiment"), read through `con`
    (a connection to the views, `query.connect`)."""
    from pipeline.compare import samples

    if by == "prompt-version":
        return samples.prompt_versions(con, scope, window_days)
    return samples.experiments(con, scope, expected_split, warn, experiment_id)


def compare(
    warehouse: Path | str,
    by: str,
    scope: Scope,
    settings: Settings,
    *,
    window_days: int | None = None,
    expected_split: Sequence[float] | None = None,
    experiment_id: str | None = None,
    as_of: int | datetime | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> pa.Table:
    """The comparison rows (`COLUMNS`) of `by` ("prompt-version" or "experiment")."""
    from pipeline import query

    con = query.connect(warehouse, as_of)
    try:
        found = pairs(
            con,
            by,
            scope,
            window_days=window_days,
            expected_split=expected_split,
            experiment_id=experiment_id,
            warn=warn,
        )
    finally:
        con.close()
    return table(found, settings)
