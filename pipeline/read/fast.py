"""What the fast readers share: giving up on a file, the independent count of its lines,
batches of their query's rows, and the columns typed rows carry."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.errors import unreadable
from pipeline.read import json_records
from pipeline.read.json_records import META_COLUMNS
from pipeline.read.source import BOM, Source, open_bytes
from pipeline.transform import REASON
from schemas import FIELD_NAMES, polars_schema

# Rows handed on at a time: Pandera and polars cost a fixed time a call (see gather.py).
BATCH_ROWS = 100_000
# And at most this much of DuckDB's result a batch (100,000 typical sessions are 26 MiB):
# sessions of several kB each made batches of gigabytes.
BATCH_BYTES = 64 << 20
# Odd lines read the exact way at a time (see `OddTexts`), or their text, whichever is first.
ODD_ROWS = 20_000
ODD_BYTES = 16 << 20
_COUNT_BLOCK = 1 << 20
# What a fast reader reads of a file's start to decide whether it may try the file.
HEAD_BYTES = 1 << 20


class Fallback(Exception):
    """This reader cannot read the file as the exact reader would: use that one."""


class NotJson(Fallback):
    """A line is not JSON: read the file again, `tolerant`."""


@contextmanager
def read_failures(tolerant: bool) -> Iterator[None]:
    """Any failure of DuckDB's reading, as a decision: read the file again, tolerant (a line
    that is not JSON) or with the exact reader (anything else: it says best what is wrong, or
    reads what DuckDB could not). Memory and interrupts are not the file's: they go on."""
    try:
        yield
    except (duckdb.OutOfMemoryException, duckdb.InterruptException):
        raise
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        # Raised by DuckDB, or by Arrow's reader of its result (as an OSError).
        message = " ".join(str(exc).split())[:300]
        if not tolerant and "json" in message.lower():
            raise NotJson(message) from None
        raise Fallback(message) from None


def batches(
    reader: pa.RecordBatchReader, rows_of: Callable[[pa.RecordBatch], int] = len
) -> Iterator[pa.Table]:
    """The rows of `reader` (DuckDB hands them out by 2,048) in tables of about `BATCH_ROWS`
    sessions (`rows_of` a batch) or `BATCH_BYTES`, whichever comes first."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        pending.append(batch)
        rows += rows_of(batch)
        size += batch.nbytes
        if rows >= BATCH_ROWS or size >= BATCH_BYTES:
            yield pa.Table.from_batches(pending)
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.Table.from_batches(pending)


class OddTexts:
    """The texts of a file's odd lines, gathered over batches and read the exact way
    (`json_records`) some at a time: each read costs a fixed time (about 0.07 s) besides its
    rows, and a file with 1% odd lines had a read of 1,000 texts in every batch."""

    def __init__(self, con: duckdb.DuckDBPyConnection, warn: Callable[[str], None]) -> None:
        self._con, self._warn = con, warn
        self._pending: list[pa.Table] = []
        self._rows = self._bytes = 0

    def add(self, texts: pa.Table) -> Iterator[tuple[str, pl.DataFrame]]:
        """Keep `texts` (`_text`, `_line`, `_element`); read what is kept, once it is enough."""
        self._pending.append(texts)
        self._rows += texts.num_rows
        self._bytes += texts.nbytes
        if self._rows >= ODD_ROWS or self._bytes >= ODD_BYTES:
            yield from self.flush()

    def flush(self) -> Iterator[tuple[str, pl.DataFrame]]:
        """Read what is kept, in the file's order: ("raw", rows as the exact reader gives)."""
        if not self._pending:
            return
        texts = pa.concat_tables(self._pending)
        self._pending, self._rows, self._bytes = [], 0, 0
        yield "raw", json_records.sessions_of(self._con, texts, self._warn)


def rows_where(table: pa.Table, keep: np.ndarray) -> pl.DataFrame:
    """`table`'s rows where `keep`, as polars. Filtered by polars, after the hand-over: its
    strings are views, where Arrow's filter copied every string (0.1 s of 100,000 rows, in
    the ingest's own thread, for every batch with an odd row). Most batches are kept whole,
    and not copied at all."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame if keep.all() else frame.filter(pl.Series(keep))


def with_meta(
    typed: pl.DataFrame, line: np.ndarray, element: np.ndarray, item: np.ndarray | None = None
) -> pl.DataFrame:
    """Typed rows with the columns the transform would give them: every meta column, empty
    where a row with the usual keys has nothing to say, and no reasons. `item`: each row's
    place in its API page's items, where the rows are a page's."""
    nulls: dict[str, pl.DataType] = {
        "extra_fields": pl.String(),
        "_keys": pl.List(pl.String),
        "_record": pl.String(),
        "_error": pl.String(),
        "_error_detail": pl.String(),
    }
    items = pl.lit(None, pl.Int64) if item is None else pl.Series(item, dtype=pl.Int64)
    return (
        typed.cast(polars_schema())
        .with_columns(
            *[pl.lit(None, dtype).alias(name) for name, dtype in nulls.items()],
            items.alias("_item"),
            pl.Series("_line", line),
            pl.Series("_element", element),
            pl.lit([], pl.List(REASON)).alias("_reasons"),
        )
        .select(*FIELD_NAMES, *META_COLUMNS, "_reasons")
    )


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quoted(name: str) -> str:
    """SQL for the identifier `name`, quoted."""
    return '"' + name.replace('"', '""') + '"'


def key_list(keys: tuple[str, ...]) -> str:
    """SQL for `keys` as a list of text, to compare with `json_keys`."""
    return "[" + ", ".join(literal(k) for k in keys) + "]::VARCHAR[]"


def plain(source: Source) -> bool:
    """Whether `source`'s bytes are the text the readers read (not gzipped, UTF-8), but for a
    leading byte order mark."""
    return not source.gzipped and source.encoding == "utf-8"


class LineCounter(threading.Thread):
    """Counts the file's lines as the exact reader numbers them (every newline, and a last
    line without one), apart from DuckDB, beside it; and, in the same pass, whether any of
    `refused` (byte strings a reader cannot take) occurs in the file.

    With `hashed` (a `plain` file only), the same pass gives the SHA-256 of the file's bytes,
    the manifest's name for its content (`sha256`): one read of the file where a hash of its
    own was a second (0.3-0.5 CPU s of a 790 MB file, mostly the kernel's copies). hashlib
    lets go of the GIL for each block, so the pass takes the time the readers leave.
    """

    def __init__(
        self, source: Source, refused: tuple[bytes, ...] = (), *, hashed: bool = False
    ) -> None:
        super().__init__(name="line-count", daemon=True)
        if hashed and not plain(source):
            raise ValueError(f"{source.name}: only a plain file is hashed as it is counted")
        self._source = source
        self._refused = refused
        self._hashed = hashed
        self._count: int | None = None
        self._found: bytes | None = None
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._lines, self._last = 0, b"\n"  # newlines so far, and the last byte

    def run(self) -> None:
        try:
            self._count = self._scan()
        except BaseException as exc:  # the exact reader will say what is wrong
            self._error = exc

    def _scan(self) -> int:
        # One buffer read into again and again: a fresh block of 16 MB a read cost the kernel
        # 1 s of page faults on 790 MB; a reused one of 1 MB, 0.2 s.
        buffer = bytearray(_COUNT_BLOCK)
        view = memoryview(buffer)
        digest = hashlib.sha256() if self._hashed else None
        with self._open() as stream:
            if digest is not None:
                # The raw bytes of a plain file: the hash sees a leading byte order mark, the
                # count does not (the readers do not: `open_bytes`).
                head = stream.read(len(BOM))
                digest.update(head)
                if head != BOM:
                    self._take(head, len(head))
            while size := _read_into(stream, view):
                if digest is not None:
                    digest.update(view[:size])
                self._take(buffer, size)
        if digest is not None:
            self._digest = digest.hexdigest()
        return self._lines + (self._last != b"\n")

    def _take(self, block: bytes | bytearray, size: int) -> None:
        """Count the first `size` bytes of `block`, the text after what was taken before."""
        if not size:
            return
        self._lines += block.count(b"\n", 0, size)
        if self._refused and self._found is None:
            # From the block before's last byte: a pair may straddle two blocks.
            seen = self._last + block[:1]
            self._found = next(
                (r for r in self._refused if r in seen or block.find(r, 0, size) >= 0), None
            )
        self._last = bytes(block[size - 1 : size])

    def _open(self) -> AbstractContextManager[BinaryIO]:
        # A plain file's bytes as they are (`open_bytes` drops a byte order mark, which the
        # hash must see); any other, as the readers read it.
        if self._hashed:
            return self._source.path.open("rb", buffering=0)
        return open_bytes(self._source)

    def result(self) -> int:
        self.join()
        if self._count is None:
            raise Fallback(f"the lines could not be counted: {self._error}")
        if self._found is not None:
            raise Fallback(f"the file holds {self._found.decode()!r}, which this reader refuses")
        return self._count

    def sha256(self) -> str:
        """The file's SHA-256 (with `hashed`), as `manifest.file_hash` gives it; a file that
        could not be read is the input's fault (`InputError`)."""
        self.join()
        if self._digest is None:
            raise unreadable(self._source.path, self._error)
        return self._digest


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """`stream`'s next bytes into `view`, as many as there are up to its size; 0 at the end.
    (A stream of text in another encoding reads only a block at a time.)"""
    if hasattr(stream, "readinto"):
        return stream.readinto(view) or 0
    block = stream.read(len(view))
    view[: len(block)] = block
    return len(block)
