"""Gather a reader's small batches into larger ones before they are typed and validated.

Readers hand DuckDB a few megabytes at a time, which bounds its memory; polars and Pandera
cost a fixed time per call besides their time per row (Pandera about 5 ms a batch, which at
10,000 rows a batch was most of its time), so the rest of the ingest takes batches
several times larger.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

# About one 16 MB read of a typical export: larger batches cost memory (about 90 MiB
# more at 40,000 rows) for little time.
MIN_ROWS = 20_000


def gathered(frames: Iterator[pl.DataFrame], min_rows: int = MIN_ROWS) -> Iterator[pl.DataFrame]:
    """`frames` concatenated in order into frames of at least `min_rows` rows (the last may
    have fewer); every row of `frames` is in exactly one of them."""
    pending: list[pl.DataFrame] = []
    rows = 0
    try:
        for frame in frames:
            pending.append(frame)
            rows += len(frame)
            if rows >= min_rows:
                yield pl.concat(pending, rechunk=False)
                pending, rows = [], 0
        if pending:
            yield pl.concat(pending, rechunk=False)
    finally:
        # Closed early (an error, a signal): the reader stops now, not when collected.
        close = getattr(frames, "close", None)
        if close is not None:
            close()
