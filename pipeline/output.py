"""Results out, streamed: aligned text and Markdown for people, CSV and JSON exact for programs.

A result comes as columns (a name and a `Kind`) and Arrow batches whose values are already
text, as DuckDB writes them (`query.Rows`), except intervals. Each batch is written as it
comes, so memory does not grow with the result; the aligned table alone looks ahead, at its
first `TABLE_SAMPLE` rows, to fix its column widths.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import chain
from typing import Any, Literal, TextIO

import polars as pl
import pyarrow as pa

FORMATS = ("table", "csv", "json", "markdown")
NULL = "(null)"
# Rows the aligned table reads before it fixes its column widths (at least; whole batches);
# a later, wider cell is cut with an ellipsis.
TABLE_SAMPLE = 10_000

Kind = Literal["number", "float", "bool", "text", "json", "interval"]
_RIGHT: set[str] = {"number", "float"}
# DuckDB's text for floats that JSON has no number for.
_NON_FINITE = {"nan", "-nan", "inf", "-inf", "infinity", "-infinity"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


# --- escaping: what a terminal would act on is shown, not sent --------------------------------

_ESCAPES = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    # Line and paragraph separators, and the bidirectional overrides that reorder a line.
    **{c: f"\\u{c:04x}" for c in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]},
}


def escape(text: str) -> str:
    """`text` on one line, with control characters shown as `\\x1b`, `\\n`, `\\t`."""
    return text.translate(_ESCAPES)


# --- values -----------------------------------------------------------------------------------


def _iso_duration(value: Any) -> str:
    """A DuckDB interval (months, days, nanoseconds; each may be negative) in ISO 8601."""
    months, days, nanos = value.months, value.days, value.nanoseconds
    parts = ["P"]
    if months:
        years, months = divmod(abs(months), 12)
        sign = "-" if value.months < 0 else ""
        parts += [f"{sign}{years}Y" if years else "", f"{sign}{months}M" if months else ""]
    if days:
        parts.append(f"{days}D")
    if nanos:
        sign = "-" if nanos < 0 else ""
        hours, rest = divmod(abs(nanos), 3_600_000_000_000)
        minutes, rest = divmod(rest, 60_000_000_000)
        seconds = Decimal(rest) / Decimal(1_000_000_000)
        parts.append("T")
        parts += [f"{sign}{hours}H" if hours else "", f"{sign}{minutes}M" if minutes else ""]
        if seconds:
            parts.append(f"{sign}{seconds.normalize():f}S")
    text = "".join(parts)
    return "PT0S" if text == "P" else text


def _finite_only(value: Any) -> Any:
    """`value` (parsed JSON) with NaN and infinities as null: JSON has no numbers for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    return value


def _json_text(text: str) -> str:
    # DuckDB's to_json writes NaN and Infinity, which JSON does not have.
    return json.dumps(_finite_only(json.loads(text)), ensure_ascii=False, separators=(",", ":"))


def _texts(array: pa.Array, kind: Kind) -> list[str | None]:
    """A column of one batch as text, null as None."""
    if kind == "interval":
        return [None if v is None else _iso_duration(v) for v in array.to_pylist()]
    values: list[str | None] = array.cast(pa.string()).to_pylist()
    if kind == "json":
        return [None if v is None else _json_text(v) for v in values]
    return values


def _json_values(texts: list[str | None], kind: Kind) -> list[str]:
    """A column as JSON values: numbers exact, NaN and infinities null."""
    if kind in ("number", "bool", "json"):
        return ["null" if v is None else v for v in texts]
    if kind == "float":
        return ["null" if v is None or v.lower() in _NON_FINITE else v for v in texts]
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return ["null" if v is None else dumps(v) for v in texts]


def _human(name: str, texts: list[str | None], kind: Kind) -> list[str]:
    """A column for people: numbers grouped, floats to one decimal (p-values to two digits),
    shares in percent, every control character escaped."""
    if kind == "float":
        if name.endswith("_share"):
            pattern = "{:.1%}"
        elif "p_value" in name:  # a p-value's size is in its leading digits, not its decimals
            pattern = "{:.2g}"
        else:
            pattern = "{:,.1f}"
        return [
            NULL if v is None else v if v.lower() in _NON_FINITE else pattern.format(float(v))
            for v in texts
        ]
    if kind == "number":
        return [NULL if v is None else _grouped(v) for v in texts]
    return [NULL if v is None else v.translate(_ESCAPES) for v in texts]


def _grouped(text: str) -> str:
    try:
        return f"{Decimal(text):,}"
    except (InvalidOperation, ValueError):
        return text


# --- formats ----------------------------------------------------------------------------------


def write(
    columns: list[Column],
    batches: Iterable[pa.RecordBatch],
    fmt: str,
    out: TextIO,
    shown: list[str] | None = None,
) -> int:
    """Write the rows in `fmt` to `out` as they come; the number of rows.

    `shown` picks and orders the columns of the human formats (table, markdown).
    """
    picked = list(range(len(columns)))
    if shown is not None and fmt in ("table", "markdown"):
        picked = [next(i for i, c in enumerate(columns) if c.name == name) for name in shown]
    cols = [columns[i] for i in picked]
    texts = (
        [_texts(batch.column(i), c.kind) for i, c in zip(picked, cols, strict=True)]
        for batch in batches
    )
    if fmt == "csv":
        return _csv(cols, texts, out)
    if fmt == "json":
        return _json(cols, texts, out)
    human = (
        [_human(c.name, t, c.kind) for c, t in zip(cols, batch, strict=True)] for batch in texts
    )
    if fmt == "markdown":
        return _markdown(cols, human, out)
    return _aligned(cols, human, out)


Texts = Iterator[list[list[str | None]]]  # batch by batch, column by column


def _csv(cols: list[Column], texts: Texts, out: TextIO) -> int:
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([c.name for c in cols])
    out.write(header.getvalue())
    count = 0
    names = [f"c{n}" for n in range(len(cols))]
    for batch in texts:
        # polars quotes only where needed and writes fast; its own names for the columns, as
        # the header may repeat a name.
        frame = pl.DataFrame(
            dict(zip(names, batch, strict=True)), schema=dict.fromkeys(names, pl.String)
        )
        out.write(frame.write_csv(include_header=False))
        count += frame.height
    return count


def _unique(names: list[str]) -> list[str]:
    """The names, a repeated one as `name_2`, `name_3`: a JSON object has each key once."""
    given, used = set(names), set()
    result = []
    for name in names:
        candidate, n = name, 1
        while candidate in used or (candidate != name and candidate in given):
            n += 1
            candidate = f"{name}_{n}"
        used.add(candidate)
        result.append(candidate)
    return result


def _json(cols: list[Column], texts: Texts, out: TextIO) -> int:
    """An array of objects, one a line."""
    keys = [json.dumps(k, ensure_ascii=False) + ": " for k in _unique([c.name for c in cols])]
    count = 0
    out.write("[")
    for batch in texts:
        fields = [
            [key + v for v in _json_values(column, c.kind)]
            for key, column, c in zip(keys, batch, cols, strict=True)
        ]
        rows = ["{" + ", ".join(row) + "}" for row in zip(*fields, strict=True)]
        if rows:
            out.write(("\n  " if count == 0 else ",\n  ") + ",\n  ".join(rows))
            count += len(rows)
    out.write("\n]\n" if count else "]\n")
    return count


def _markdown(cols: list[Column], human: Iterator[list[list[str]]], out: TextIO) -> int:
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n"

    out.write(line(escape(c.name) for c in cols))
    out.write(line("---" for _ in cols))
    count = 0
    for batch in human:
        rows = list(zip(*batch, strict=True))
        out.write("".join(map(line, rows)))
        count += len(rows)
    return count


def _aligned(cols: list[Column], human: Iterator[list[list[str]]], out: TextIO) -> int:
    header = [escape(c.name) for c in cols]
    sample: list[list[list[str]]] = []
    while sum(len(batch[0]) for batch in sample if batch) < TABLE_SAMPLE:
        batch = next(human, None)
        if batch is None:
            break
        sample.append(batch)
    widths = [
        max([len(name), *(len(cell) for batch in sample for cell in batch[i])])
        for i, name in enumerate(header)
    ]
    right = [c.kind in _RIGHT for c in cols]

    def lines(columns: list[list[str]]) -> str:
        fitted = [
            [(c if len(c) <= w else c[: w - 1] + "…").rjust(w) if r else
             (c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c in column]
            for column, w, r in zip(columns, widths, right, strict=True)
        ]  # fmt: skip
        return "".join("  ".join(row).rstrip() + "\n" for row in zip(*fitted, strict=True))

    out.write(lines([[h] for h in header]))
    out.write(lines([["-" * w] for w in widths]))
    count = 0
    for batch in chain(sample, human):
        out.write(lines(batch))
        count += len(batch[0]) if batch else 0
    return count
