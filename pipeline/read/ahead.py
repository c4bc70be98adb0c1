"""Read the next batch of an export while the current one is typed, validated and staged.

Reading (line splitting and DuckDB's JSON parsing) and the rest (polars, Pandera, Parquet)
both spend most of their time outside the GIL, so one reader thread puts the second core to
work. Only one batch waits at a time, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(batches: Iterator[T], interrupt: Callable[[], None]) -> Generator[T, None, None]:
    """Yield `batches`, produced one ahead in a thread.

    An exception in the reader is raised here, in the consumer. When the consumer stops early
    (an error, a signal), `interrupt` cuts the reader's current work short and the thread is
    joined before this generator returns: nothing reads on after the ingest has stopped.
    """
    waiting: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                waiting.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(_END)
        except BaseException as exc:  # handed to the consumer, which decides
            hand_over(_END, exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = waiting.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        interrupt()
        thread.join()
