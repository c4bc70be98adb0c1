"""Tables out: aligned text and Markdown for people, CSV and JSON exact for programs."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa

FORMATS = ("table", "csv", "json", "markdown")
NULL = "(null)"


def render(table: pa.Table, fmt: str, columns: list[str] | None = None) -> str:
    """`table` in `fmt`; `columns` picks and orders what the human formats show."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        return json.dumps(frame.to_dicts(), default=_json_value, indent=2) + "\n"
    shown = frame.select(columns) if columns else frame
    header = shown.columns
    rows = [
        [_human(name, value) for name, value in zip(header, row, strict=True)]
        for row in shown.iter_rows()
    ]
    if fmt == "markdown":
        return _markdown(header, rows)
    return _aligned(header, rows, numeric=[dtype.is_numeric() for dtype in shown.dtypes])


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _human(name: str, value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if name.endswith("_share"):
            return f"{value:.1%}"
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _aligned(header: list[str], rows: list[list[str]], numeric: list[bool]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return "\n".join(out) + "\n"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)]) + "\n"
