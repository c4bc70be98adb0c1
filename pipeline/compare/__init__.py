"""`sessions compare`: did a prompt change or an experiment variant make sessions shorter?

samples.py reads what to compare from the views (the .sql files beside it), statistics.py
measures each pair, verdict.py calls it, rows.py lays the rows out; `compare` puts them
together for the command, the report and the notebook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from pipeline.compare.rows import COLUMNS, SCHEMA, Settings, table
from pipeline.compare.samples import BEFORE_AFTER, CompareError
from pipeline.scope import Scope

__all__ = ["BEFORE_AFTER", "COLUMNS", "SCHEMA", "CompareError", "Settings", "compare"]


def compare(
    warehouse: Path | str,
    by: str,
    scope: Scope,
    settings: Settings,
    *,
    window_days: int | None = None,
    expected_split: Sequence[float] | None = None,
    as_of: int | datetime | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> pa.Table:
    """The comparison rows (`COLUMNS`) of `by` ("prompt-version" or "experiment")."""
    from pipeline import query
    from pipeline.compare import samples

    con = query.connect(warehouse, as_of)
    try:
        if by == "prompt-version":
            pairs = samples.prompt_versions(con, scope, window_days)
        else:
            pairs = samples.experiments(con, scope, expected_split, warn)
    finally:
        con.close()
    return table(pairs, settings)
