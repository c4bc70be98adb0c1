"""Gathering a reader's batches: every row once, in order, in batches of at least the size
asked; an early stop closes the reader."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from pipeline.read.gather import gathered


def frames(sizes: list[int]) -> Iterator[pl.DataFrame]:
    start = 0
    for size in sizes:
        yield pl.DataFrame({"_element": range(start, start + size)})
        start += size


def test_every_row_once_in_order_in_batches_of_at_least_min_rows() -> None:
    sizes = [3, 4, 1, 7, 2, 2, 5]
    out = list(gathered(frames(sizes), min_rows=6))
    assert [len(f) for f in out] == [7, 8, 9]  # 3+4, 1+7, 2+2+5
    assert pl.concat(out)["_element"].to_list() == list(range(sum(sizes)))


def test_a_short_input_is_one_batch_and_no_input_none() -> None:
    assert [len(f) for f in gathered(frames([2, 3]), min_rows=100)] == [5]
    assert list(gathered(frames([]), min_rows=100)) == []


def test_stopping_early_closes_the_reader() -> None:
    closed = []

    def reader() -> Iterator[pl.DataFrame]:
        try:
            yield from frames([5] * 100)
        finally:
            closed.append(True)

    batches = gathered(reader(), min_rows=10)
    assert len(next(batches)) == 10
    batches.close()
    assert closed == [True]
