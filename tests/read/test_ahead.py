"""Reading one batch ahead in a thread: same batches, same order, errors surface, and an
early stop leaves no reader running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipeline.read.ahead import read_ahead


def test_batches_come_in_order() -> None:
    assert list(read_ahead(iter(range(100)), lambda: None)) == list(range(100))


def test_a_reader_error_is_raised_in_the_consumer_after_the_batches_before_it() -> None:
    def batches() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 3: broken")

    seen = []
    with pytest.raises(ValueError, match="line 3: broken"):
        for batch in read_ahead(batches(), lambda: None):
            seen.append(batch)
    assert seen == [1, 2]


def test_stopping_early_interrupts_and_joins_the_reader() -> None:
    closed = threading.Event()
    interrupted = []

    def batches() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    ahead = read_ahead(batches(), lambda: interrupted.append(True))
    assert next(ahead) == 0
    ahead.close()
    assert interrupted == [True]
    assert closed.is_set()  # the reader's generator was closed, in its own thread
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
